// The peer: Socket.IO 4 with @socket.io/redis-adapter, websocket transport only. A publisher
// connection (query pub=1) emits 'pub'; the server broadcasts it to room 'bench' on every node
// through Redis. Every other connection joins 'bench'.
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { listenAndAnnounce } from './listen.js';

const redisUrl = process.env.REDIS_URL;
if (redisUrl === undefined) throw new Error('REDIS_URL is required');
const pub = new Redis(redisUrl);
const sub = pub.duplicate();
const server = createServer();
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.adapter(createAdapter(pub, sub, { key: process.env.REDIS_PREFIX ?? 'socket.io' }));

io.on('connection', (socket) => {
  if (socket.handshake.query.pub === '1') {
    socket.on('pub', (data: string) => {
      io.to('bench').emit('m', data);
    });
    return;
  }
  void socket.join('bench');
});

listenAndAnnounce(server, () => {
  io.disconnectSockets(true);
  pub.disconnect();
  sub.disconnect();
});

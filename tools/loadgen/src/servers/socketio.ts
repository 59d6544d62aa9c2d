// The peer: Socket.IO 4 with @socket.io/redis-adapter, websocket transport only. A publisher
// connection (query pub=1) emits 'pub' (data, room); the server broadcasts it to that room on every
// node through Redis. Every other connection joins the room in its query (`room`, else 'bench'):
// one room per channel, as a Socket.IO application would. GET /stats answers {"connections":N}.
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { BROADCAST_CHANNEL } from '../layout.js';
import { listenAndAnnounce } from './listen.js';

const redisUrl = process.env.REDIS_URL;
if (redisUrl === undefined) throw new Error('REDIS_URL is required');
const pub = new Redis(redisUrl);
const sub = pub.duplicate();
// Engine.IO takes its own path (/socket.io/) and hands every other request to this handler.
const server = createServer((req, res) => {
  if (req.url === '/stats') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ connections: io.engine.clientsCount }));
  else res.writeHead(404).end();
});
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.adapter(createAdapter(pub, sub, { key: process.env.REDIS_PREFIX ?? 'socket.io' }));

io.on('connection', (socket) => {
  const { pub: isPublisher, room } = socket.handshake.query;
  if (isPublisher === '1') {
    socket.on('pub', (data: string, to: string) => {
      io.to(to).emit('m', data);
    });
    return;
  }
  void socket.join(typeof room === 'string' ? room : BROADCAST_CHANNEL);
});

listenAndAnnounce(server, () => {
  io.disconnectSockets(true);
  pub.disconnect();
  sub.disconnect();
});

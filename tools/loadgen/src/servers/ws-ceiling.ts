// The ceiling: a bare single-process ws server with no Redis and no queues. Each message from a
// publisher (path /pub) is framed once with ws's Sender.frame and written to every subscriber's
// socket (path /sub). Nothing a gateway must do beyond that write is done here.
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
// The gateway's own framing, so the ceiling frames exactly as a gateway does.
import { textFrame } from '../../../../services/gateway/src/frame.js';
import { listenAndAnnounce } from './listen.js';

const subscribers = new Set<Socket>();
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, skipUTF8Validation: true });
const server = createServer((_req, res) => res.writeHead(404).end());

server.on('upgrade', (req, socket: Socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    if (req.url === '/pub') {
      ws.on('message', (data: Buffer) => {
        const frame = textFrame(data);
        for (const sub of subscribers) sub.write(frame);
      });
      return;
    }
    subscribers.add(socket);
    ws.on('close', () => subscribers.delete(socket));
  });
});

listenAndAnnounce(server, () => {
  for (const ws of wss.clients) ws.terminate();
});

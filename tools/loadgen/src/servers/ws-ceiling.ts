// The ceiling: a bare single-process ws server with no Redis and no queues. Subscribers (path
// /sub?channel=C, channel `bench` without one) are kept in one set per channel. Each message from
// a publisher (path /pub, `<channel> <payload>`) is framed once with ws's Sender.frame and written
// to every subscriber of its channel. With COALESCE=1 (the many-channel scenarios, as the gateway
// does) the frames of one event-loop turn are kept per socket and written together at the turn's
// end, corked, so a socket with several frames takes one writev. Nothing a gateway must do beyond
// that write is done here. GET /stats answers {"connections":N} (the churn scenario's gauge).
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
// The gateway's own framing, so the ceiling frames exactly as a gateway does.
import { textFrame } from '../../../../services/gateway/src/frame.js';
import { BROADCAST_CHANNEL } from '../layout.js';
import { listenAndAnnounce } from './listen.js';

const SPACE = 0x20;
const coalesce = process.env.COALESCE === '1';
const channels = new Map<string, Set<Socket>>();
/** COALESCE: frames waiting for the end of this turn, by socket; the map's order is the flush order. */
const pending = new Map<Socket, Buffer[]>();
let flushScheduled = false;
let connections = 0;
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, skipUTF8Validation: true });
const server = createServer((req, res) => {
  if (req.url === '/stats') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ connections }));
  else res.writeHead(404).end();
});

function flush(): void {
  flushScheduled = false;
  for (const [socket, frames] of pending) {
    if (frames.length === 1) socket.write(frames[0]!);
    else {
      socket.cork();
      for (const frame of frames) socket.write(frame);
      socket.uncork();
    }
  }
  pending.clear();
}

function deliver(subscribers: Set<Socket>, frame: Buffer): void {
  if (!coalesce) {
    for (const sub of subscribers) sub.write(frame);
    return;
  }
  for (const sub of subscribers) {
    const frames = pending.get(sub);
    if (frames === undefined) pending.set(sub, [frame]);
    else frames.push(frame);
  }
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

server.on('upgrade', (req, socket: Socket, head) => {
  const url = new URL(req.url ?? '/', 'http://ceiling');
  if (url.pathname !== '/pub' && url.pathname !== '/sub') {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    connections++;
    ws.on('close', () => connections--);
    if (url.pathname === '/pub') {
      ws.on('message', (data: Buffer) => {
        const space = data.indexOf(SPACE);
        const subscribers = channels.get(data.toString('latin1', 0, space));
        if (subscribers !== undefined) deliver(subscribers, textFrame(data.subarray(space + 1)));
      });
      return;
    }
    const name = url.searchParams.get('channel') ?? BROADCAST_CHANNEL;
    let subscribers = channels.get(name);
    if (subscribers === undefined) channels.set(name, (subscribers = new Set()));
    subscribers.add(socket);
    ws.on('close', () => {
      subscribers.delete(socket);
      pending.delete(socket);
      if (subscribers.size === 0 && channels.get(name) === subscribers) channels.delete(name);
    });
  });
});

listenAndAnnounce(server, () => {
  for (const ws of wss.clients) ws.terminate();
});

// The publisher load process: one open-loop publisher. It sends at a constant rate whatever the
// target does, stamping each payload with the time it was due (not the time it went out), so a
// stalled publisher or server shows up as latency instead of hiding it.
import { io, type Socket as SioSocket } from 'socket.io-client';
import WebSocket from 'ws';
import type { PublisherDialect, PublisherReply, PublisherRequest } from './ipc.js';
import { makePayload, nowMicros } from './payload.js';

type Send = (channel: string, data: string) => void;
let sends: Send[] = [];
let closers: (() => void)[] = [];

function reply(msg: PublisherReply): void {
  process.send!(msg);
}

function openWs(url: string, wrap: (channel: string, data: string) => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => {
      sends.push((channel, data) => ws.send(wrap(channel, data)));
      closers.push(() => ws.terminate());
      resolve();
    });
    ws.once('error', reject);
  });
}

function openSocketIo(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket: SioSocket = io(url, { transports: ['websocket'], query: { pub: '1' }, reconnection: false });
    socket.once('connect', () => {
      sends.push((channel, data) => socket.emit('pub', data, channel));
      closers.push(() => socket.close());
      resolve();
    });
    socket.once('connect_error', reject);
  });
}

async function connect(dialect: PublisherDialect, urls: readonly string[]): Promise<void> {
  sends = [];
  closers = [];
  for (const url of urls) {
    if (dialect === 'socketio') await openSocketIo(url);
    // The ceiling reads the channel up to the first space (channel names hold none).
    else if (dialect === 'ws') await openWs(url, (channel, data) => `${channel} ${data}`);
    else await openWs(url, (channel, data) => `{"op":"publish","channel":"${channel}","data":"${data}"}`);
  }
  reply({ type: 'connected' });
}

/**
 * Sends rate msg/s for durationMs, message s to channels[s % channels.length]; each message goes
 * out on every connection (one per ceiling server).
 */
function publish(run: number, rate: number, durationMs: number, size: number, channels: readonly string[]): void {
  const total = Math.round((rate * durationMs) / 1000);
  const intervalMicros = 1_000_000 / rate;
  const start = nowMicros();
  let sent = 0;
  const tick = (): void => {
    const due = Math.min(total, Math.floor((nowMicros() - start) / intervalMicros) + 1);
    for (; sent < due; sent++) {
      const payload = makePayload(run, Math.round(start + sent * intervalMicros), size);
      const channel = channels[sent % channels.length]!;
      for (const send of sends) send(channel, payload);
    }
    if (sent < total) setTimeout(tick, 1);
    else reply({ type: 'published', sent, elapsedMs: (nowMicros() - start) / 1000 });
  };
  tick();
}

process.on('message', (msg: PublisherRequest) => {
  switch (msg.type) {
    case 'connect':
      connect(msg.dialect, msg.urls).catch((err: Error) => {
        process.stderr.write(`publisher: ${err.message}\n`);
        process.exit(1);
      });
      break;
    case 'publish':
      publish(msg.run, msg.rate, msg.durationMs, msg.size, msg.channels);
      break;
    case 'close':
      for (const close of closers) close();
      reply({ type: 'closed' });
      process.disconnect();
      break;
  }
});
process.on('disconnect', () => process.exit(0));

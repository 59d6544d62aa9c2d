// The benchmark's own measuring parts against a real ws server on loopback: the minimal WebSocket
// client must see every frame whatever the TCP chunking, answer pings, and read the payload stamp;
// the ceiling server must route by channel (the many-channel scenarios rest on it), and the churn
// load must leave no connection open.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocketClient, { WebSocketServer, type WebSocket } from 'ws';
import { startGateway } from '../../tools/kit/src/gateway.js';
import { waitUntil } from '../../tools/kit/src/wait.js';
import { roomsLayout } from '../../tools/loadgen/src/layout.js';
import { Subscribers } from '../../tools/loadgen/src/load.js';
import { makePayload, readPayload } from '../../tools/loadgen/src/payload.js';
import { MiniWebSocket } from '../../tools/loadgen/src/wsclient.js';

const CEILING = fileURLToPath(new URL('../../tools/loadgen/src/servers/ws-ceiling.js', import.meta.url));

async function server(t: { after(fn: () => Promise<void> | void): void }): Promise<{ url: string; next: Promise<WebSocket> }> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  const next = once(wss, 'connection').then(([ws]) => ws as WebSocket);
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.after(async () => {
    for (const ws of wss.clients) ws.terminate();
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });
  return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/sub?x=1`, next };
}

describe('benchmark payload', () => {
  test('round-trips run and send time inside any envelope', { timeout: 5000 }, () => {
    const payload = makePayload(7, 123456789012, 64);
    assert.equal(payload.length, 64);
    const framed = Buffer.from(`{"op":"message","channel":"bench","data":"${payload}"}`);
    const out = { run: 0, sent: 0 };
    assert.equal(readPayload(framed, 0, framed.length, out), true);
    assert.deepEqual(out, { run: 7, sent: 123456789012 });
    const sio = Buffer.from(`xx42["m","${payload}"]`);
    assert.equal(readPayload(sio, 2, sio.length, out), true);
    assert.equal(readPayload(Buffer.from('40{"sid":"abc"}'), 0, 15, out), false);
    assert.equal(readPayload(framed, 0, 50, out), false, 'a stamp cut short is not read');
  });
});

describe('benchmark WebSocket client', () => {
  test('receives every frame, small and large, in order, and answers pings', { timeout: 10_000 }, async (t) => {
    const { url, next } = await server(t);
    const got: string[] = [];
    let opened = false;
    let done: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (done = resolve));
    const sizes = [1, 125, 126, 200, 65_535, 65_536, 70_000];
    const messages = sizes.flatMap((n, i) => [`${i}:${'a'.repeat(n)}`, `${i}b`]);
    const client = new MiniWebSocket(url, '127.0.0.1', {
      onOpen: () => (opened = true),
      onClose: () => undefined,
      onMessage: (chunk, start, end) => {
        got.push(chunk.toString('utf8', start, end));
        if (got.length === messages.length) done();
      },
    });
    t.after(() => client.close());
    const ws = await next;
    const pong = once(ws, 'pong');
    ws.ping(Buffer.from('hi'));
    assert.equal((await pong)[0].toString(), 'hi');
    assert.equal(opened, true);
    // Many frames in one write (one TCP chunk) and large frames over several chunks.
    ws.send(messages[0]!);
    for (const m of messages.slice(1)) ws.send(m);
    await all;
    assert.deepEqual(got, messages);
  });

  test('a refused upgrade closes with the status line', { timeout: 5000 }, async (t) => {
    const http = createServer((_req, res) => res.writeHead(404).end());
    http.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n'));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    t.after(() => new Promise<void>((resolve) => http.close(() => resolve())));
    const reason = await new Promise<string>((resolve) => {
      new MiniWebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/nope`, '127.0.0.1', {
        onOpen: () => undefined,
        onClose: resolve,
        onMessage: () => undefined,
      });
    });
    assert.match(reason, /404/);
  });
});

describe('benchmark ceiling server', () => {
  for (const coalesce of [false, true]) {
    test(`delivers each message to its channel's subscribers only, in order${coalesce ? ', coalescing per turn' : ''}`, { timeout: 20_000 }, async (t) => {
      const ceiling = await startGateway(coalesce ? { COALESCE: '1' } : {}, 15_000, CEILING);
      t.after(() => ceiling.stop('SIGTERM', 5000));
      const got = new Map<string, string[]>();
      const expected = new Map([
        ['a', ['a1', 'a2', 'a3']],
        ['b', ['b1']],
        ['bench', ['n1']],
      ]);
      let left = [...expected.values()].reduce((n, m) => n + m.length, 0);
      let done: () => void = () => undefined;
      const all = new Promise<void>((resolve) => (done = resolve));
      const opened: Promise<void>[] = [];
      for (const path of ['/sub?channel=a', '/sub?channel=b', '/sub']) {
        const channel = path.includes('=') ? path.slice(path.indexOf('=') + 1) : 'bench';
        got.set(channel, []);
        opened.push(
          new Promise<void>((resolve, reject) => {
            const client = new MiniWebSocket(`ws://127.0.0.1:${ceiling.port}${path}`, '127.0.0.1', {
              onOpen: resolve,
              onClose: (reason) => reject(new Error(reason)),
              onMessage: (chunk, start, end) => {
                got.get(channel)!.push(chunk.toString('utf8', start, end));
                if (--left === 0) done();
              },
            });
            t.after(() => client.close());
          }),
        );
      }
      await Promise.all(opened);
      const pub = new WebSocketClient(`ws://127.0.0.1:${ceiling.port}/pub`);
      t.after(() => pub.terminate());
      await once(pub, 'open');
      // Sent in one burst, so the ceiling reads several in one turn; 'nobody' has no subscriber.
      for (const m of ['a a1', 'b b1', 'nobody x', 'a a2', 'bench n1', 'a a3']) pub.send(m);
      await all;
      assert.deepEqual(Object.fromEntries(got), Object.fromEntries(expected));
      const stats = (await (await fetch(`${ceiling.http}/stats`)).json()) as { connections: number };
      assert.equal(stats.connections, 4);
    });
  }

  test('churned connections open, close and leave none counted', { timeout: 30_000 }, async (t) => {
    const ceiling = await startGateway({ COALESCE: '1' }, 15_000, CEILING);
    t.after(() => ceiling.stop('SIGTERM', 5000));
    const subs = new Subscribers(2);
    t.after(() => subs.close());
    const connections = async (): Promise<number> => ((await (await fetch(`${ceiling.http}/stats`)).json()) as { connections: number }).connections;
    await subs.churn('plain', roomsLayout(60, 1, 1), (p) => `ws://127.0.0.1:${ceiling.port}/sub?channel=${p.channel}`, 10);
    await waitUntil(async () => (await connections()) === 0, { timeoutMs: 10_000, what: 'the ceiling to count no connection' });
    // A churn against a server that refuses every upgrade fails, naming the cause.
    await assert.rejects(
      subs.churn('plain', roomsLayout(4, 1, 1), () => `ws://127.0.0.1:${ceiling.port}/nope`, 2),
      /churn: 4 of 4 connections failed/,
    );
  });
});

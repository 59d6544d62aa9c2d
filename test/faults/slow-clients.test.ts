// Fault 4: 50 slow clients (they stop reading) among 500 fast ones on one gateway. The slow ones
// are dropped from and evicted with 1013; the fast ones get every message in order; the gateway's
// peak RSS stays under a fixed base plus the queue bounds times the clients.
//
// A paused loopback client absorbs about 4 MB in kernel buffers before the gateway queues anything
// for it, so each client is sent ~8 MB: had the gateway buffered without bound, the slow clients
// alone would have cost it ~200 MB.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { useFixture } from '../helpers/fixture.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil, within } from '../helpers/wait.js';

const FAST = 500;
const SLOW = 50;
const MESSAGES = 250;
const STEP = 25;
const PAD = 'x'.repeat(32 * 1024);
const QUEUE_MAX_BYTES = 131_072;
const MAX_MESSAGE_BYTES = 40_000;
/** Beyond its queue, a client's socket holds at most one frame past the 16 KiB high-water mark in user space. */
const SOCKET_SLACK = 16 * 1024 + MAX_MESSAGE_BYTES;
/** Allocator and V8 heap noise beyond what the idle gateway held with every client connected. */
const BASE_SLACK = 32 * 1024 * 1024;

/** Counts {"data":{"n":...}} messages without parsing the 32 KiB payload. */
class Counter {
  received = 0;
  last = -1;
  outOfOrder = 0;
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const at = data.indexOf('"n":');
      if (at < 0) return;
      const n = Number.parseInt(data.toString('latin1', at + 4, at + 16), 10);
      if (n <= this.last) this.outOfOrder++;
      this.last = n;
      this.received++;
    });
    ws.on('error', () => undefined);
    this.closed = once(ws, 'close').then(([code]) => code as number);
  }

  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }
}

async function open(url: string): Promise<Counter> {
  const ws = new WebSocket(url);
  const counter = new Counter(ws);
  await within(once(ws, 'open'), 15_000, 'a client to connect');
  return counter;
}

function rssBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

describe('fault: 50 slow clients among 500 fast', { timeout: 120_000 }, () => {
  const fx = useFixture();

  test('slow ones dropped and evicted, fast ones get everything, RSS bounded', async (t) => {
    const gateway = await fx.gateway({
      REDIS_PREFIX: uniquePrefix(),
      QUEUE_MAX_BYTES: String(QUEUE_MAX_BYTES),
      MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
      // Long enough for the rest of the burst to be fanned out after the first drop, even on a
      // busy machine, so each slow client's share is exactly MESSAGES (checked below).
      SLOW_CLIENT_EVICT_MS: '8000',
      CLOSE_TIMEOUT_MS: '30000',
    });
    const clients: Counter[] = [];
    t.after(() => {
      for (const c of clients) c.ws.terminate();
    });
    const url = gateway.ws(['feed']);
    for (let i = 0; i < FAST + SLOW; i += 50) clients.push(...(await Promise.all(Array.from({ length: 50 }, () => open(url)))));
    const fast = clients.slice(0, FAST);
    const slow = clients.slice(FAST);
    for (const s of slow) s.socket.pause();
    const publisher = await open(gateway.ws());
    t.after(() => publisher.ws.terminate());
    let acks = 0;
    publisher.ws.on('message', () => acks++);

    await waitUntil(async () => (await gateway.metric('hubcast_connections_open')) === FAST + SLOW + 1, { what: 'all clients' });
    const pid = gateway.proc.pid!;
    const base = rssBytes(pid, 'VmRSS');

    for (let n = 0; n < MESSAGES; n++) {
      publisher.ws.send(JSON.stringify({ op: 'publish', channel: 'feed', id: n, data: { n, pad: PAD } }));
      if ((n + 1) % STEP !== 0) continue;
      // Like healthy clients, the fast ones keep up between steps; the slow ones never read.
      await waitUntil(() => acks === n + 1 && fast.every((c) => c.received === n + 1), {
        timeoutMs: 30_000,
        intervalMs: 10,
        what: `${n + 1} messages at every fast client`,
      });
    }
    const atEnd = await gateway.metrics();
    const evictedBeforeEnd = atEnd.get('hubcast_clients_evicted_total{reason="slow_consumer"}')!;
    assert.equal(atEnd.get('hubcast_slow_clients')! + evictedBeforeEnd, SLOW, 'every slow client overflowed');

    await waitUntil(async () => (await gateway.metric('hubcast_clients_evicted_total{reason="slow_consumer"}')) === SLOW, {
      timeoutMs: 20_000,
      what: 'every slow client evicted',
    });
    const peak = rssBytes(pid, 'VmHWM');
    for (const s of slow) s.socket.resume();
    const codes = await within(Promise.all(slow.map((s) => s.closed)), 30_000, 'the slow clients to read up to their close');
    await waitUntil(async () => (await gateway.metric('hubcast_connections_open')) === FAST + 1, { what: 'server side closes' });

    const m = await gateway.metrics();
    const dropped =
      m.get('hubcast_messages_dropped_total{reason="queue_full"}')! +
      m.get('hubcast_messages_dropped_total{reason="evicted"}')! +
      m.get('hubcast_messages_dropped_total{reason="disconnected"}')!;
    const slowReceived = slow.reduce((sum, s) => sum + s.received, 0);
    const fastReceived = fast.reduce((sum, c) => sum + c.received, 0);
    const bound = base + BASE_SLACK + (FAST + SLOW + 1) * (QUEUE_MAX_BYTES + SOCKET_SLACK);
    const mb = (b: number): string => (b / 2 ** 20).toFixed(1);
    // Once a slow client is evicted it gets no more messages, so its share is exact only if none
    // was evicted before the last message went out.
    const slowShare =
      evictedBeforeEnd === 0
        ? `fanned out=${SLOW * MESSAGES} read=${slowReceived} dropped=${dropped} unaccounted=${SLOW * MESSAGES - slowReceived - dropped}`
        : `fanned out<=${SLOW * MESSAGES} (${evictedBeforeEnd} evicted before the last message) read=${slowReceived} dropped=${dropped}`;
    t.diagnostic(
      `fault 4 (50 slow among 500 fast): publishes accepted=${acks} rejected=0; fast deliveries expected=${FAST * MESSAGES} ` +
        `delivered=${fastReceived} dropped=0 unaccounted=${FAST * MESSAGES - fastReceived}; slow: ${slowShare}; evicted=${SLOW} (1013)`,
    );
    t.diagnostic(`  RSS base=${mb(base)} MiB peak=${mb(peak)} MiB bound=${mb(bound)} MiB (base + 32 MiB + ${FAST + SLOW + 1} x (queue ${QUEUE_MAX_BYTES / 1024} KiB + socket ${SOCKET_SLACK / 1024} KiB))`);

    assert.equal(fastReceived, FAST * MESSAGES, 'the fast clients got every message');
    assert.ok(fast.every((c) => c.outOfOrder === 0 && c.last === MESSAGES - 1), 'in order');
    assert.ok(codes.every((c) => c === 1013), 'the slow clients were closed with 1013');
    assert.ok(slow.every((s) => s.outOfOrder === 0 && s.received < MESSAGES), 'each slow client missed messages, never reordered');
    assert.ok(dropped > 0);
    if (evictedBeforeEnd === 0) {
      // Every message was fanned out to every slow client: each was read or counted as dropped.
      assert.equal(slowReceived + dropped, SLOW * MESSAGES, 'every slow delivery read or counted');
    } else {
      assert.ok(slowReceived + dropped <= SLOW * MESSAGES);
    }
    assert.equal(m.get('hubcast_queue_depth_bytes'), 0, 'evicted queues released');
    assert.ok(peak <= bound, `peak RSS ${mb(peak)} MiB within ${mb(bound)} MiB`);
  });
});

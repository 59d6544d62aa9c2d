// A client that stops reading: its drops are counted, it is evicted with 1013, and a fast client
// on the same channel receives everything. The counters in /metrics account for every frame.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

// 600 frames of ~16 KiB (~10 MB) overrun the loopback socket buffers and a 1 MiB queue, so the
// paused client must overflow. They go out in steps that the fast clients keep up with, as a
// healthy client would.
const COUNT = 600;
const STEP = 50;
const PAYLOAD = 'x'.repeat(16 * 1024);

describe('slow consumer', { timeout: 60_000 }, () => {
  const fx = useFixture();
  const connect = (url: string): Promise<TestClient> => fx.connect(url);
  const gateway = (env: Record<string, string>) => fx.gateway(env);

  async function burst(publisher: TestClient, channel: string, fast: TestClient[]): Promise<void> {
    for (let n = 0; n < COUNT; n++) {
      const data = { n, pad: PAYLOAD };
      if ((n + 1) % STEP !== 0) {
        publisher.send({ op: 'publish', channel, data });
        continue;
      }
      assert.equal((await publisher.request({ op: 'publish', channel, data })).op, 'ack');
      for (const f of fast) await f.waitForCount(() => f.messages(channel).length, n + 1, 10_000, `${n + 1} messages`);
    }
  }

  test('drop-oldest: drops counted, evicted with 1013 after SLOW_CLIENT_EVICT_MS, fast client gets all', async () => {
    const prefix = uniquePrefix();
    const env = { REDIS_PREFIX: prefix, SLOW_CLIENT_EVICT_MS: '3000' };
    const a = await gateway(env);
    const b = await gateway({ ...env, CLOSE_TIMEOUT_MS: '10000' });
    const channel = 'feed';

    const fastA = await connect(a.ws([channel]));
    const fastB = await connect(b.ws([channel]));
    const slow = await connect(b.ws([channel]));
    slow.socket.pause(); // stop reading: TCP backpressure reaches the gateway
    const publisher = await connect(a.ws());

    await burst(publisher, channel, [fastA, fastB]);
    for (const fast of [fastA, fastB]) {
      const seq = fast.messages(channel).map((m) => (m.data as { n: number }).n);
      assert.deepEqual(seq, Array.from({ length: COUNT }, (_, n) => n), 'the fast client gets every message in order');
    }
    // The whole burst was fanned out before the eviction deadline, so every frame meant for the
    // slow client is accounted for below.
    assert.equal(await b.metric('hubcast_clients_evicted_total{reason="slow_consumer"}'), 0, 'burst outran the eviction timer');
    assert.equal(await b.metric('hubcast_slow_clients'), 1);
    assert.ok((await b.metric('hubcast_messages_dropped_total{reason="queue_full"}')) > 0, 'drops are counted');

    await waitUntil(async () => (await b.metric('hubcast_clients_evicted_total{reason="slow_consumer"}')) === 1, {
      timeoutMs: 10_000,
      what: 'the slow client to be evicted',
    });
    slow.socket.resume(); // read what was written before the close frame, then the close frame
    const closed = await slow.closed;
    assert.deepEqual(closed, { code: 1013, reason: 'slow consumer' });

    // The server's side of the close completes a moment after the client's.
    await waitUntil(async () => (await b.metric('hubcast_connections_open')) === 1, { what: 'the server to close the slow client' });
    const received = slow.messages(channel).length;
    const m = await b.metrics();
    const droppedFull = m.get('hubcast_messages_dropped_total{reason="queue_full"}')!;
    const droppedEvicted = m.get('hubcast_messages_dropped_total{reason="evicted"}')!;
    assert.ok(received < COUNT, 'the slow client did miss messages');
    assert.equal(m.get('hubcast_deliveries_total'), COUNT + received, 'deliveries: all of fastB plus what slow read');
    assert.equal(droppedFull + droppedEvicted, COUNT - received, 'every frame not delivered to slow is counted as dropped');
    assert.equal(m.get('hubcast_messages_dropped_total{reason="disconnected"}'), 0);
    assert.equal(m.get('hubcast_clients_evicted_total{reason="slow_consumer"}'), 1);
    assert.equal(m.get('hubcast_clients_evicted_total{reason="queue_overflow"}'), 0);
    assert.equal(m.get('hubcast_queue_depth_messages'), 0, 'the evicted queue is released');
    assert.equal(m.get('hubcast_queue_depth_bytes'), 0);
    assert.equal(m.get('hubcast_slow_clients'), 0);
    assert.ok(b.logs.some((l) => l.msg === 'client evicted' && l.reason === 'slow_consumer'), 'the eviction is logged');
    // Gateway A had no slow client.
    assert.equal(await a.metric('hubcast_messages_dropped_total{reason="queue_full"}'), 0);
  });

  test('OVERFLOW_POLICY=evict closes the client with 1013 at its first overflow', async () => {
    const prefix = uniquePrefix();
    const g = await gateway({
      REDIS_PREFIX: prefix,
      OVERFLOW_POLICY: 'evict',
      CLOSE_TIMEOUT_MS: '10000',
    });
    const channel = 'feed';
    const fast = await connect(g.ws([channel]));
    const slow = await connect(g.ws([channel]));
    slow.socket.pause();
    const publisher = await connect(g.ws());
    await burst(publisher, channel, [fast]);
    assert.equal(await g.metric('hubcast_clients_evicted_total{reason="queue_overflow"}'), 1);
    slow.socket.resume();
    assert.deepEqual(await slow.closed, { code: 1013, reason: 'slow consumer' });
    const m = await g.metrics();
    const received = slow.messages(channel).length;
    // Under evict nothing is dropped while connected: the overflowing frame and the queue go at eviction.
    assert.equal(m.get('hubcast_messages_dropped_total{reason="queue_full"}'), 0);
    assert.ok(m.get('hubcast_messages_dropped_total{reason="evicted"}')! >= 1);
    assert.equal(m.get('hubcast_deliveries_total'), COUNT + received + COUNT / STEP, 'fast, slow, and the publisher acks');
  });
});

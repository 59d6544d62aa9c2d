// A recovery replay larger than the send queue is paced, not cut: on a real gateway and Redis,
// a client that missed 900 messages (far past QUEUE_MAX_MESSAGES=256 and a 1 MiB queue) recovers
// them all, then live ones, in order, with nothing dropped.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

// 900 messages of ~12 KiB (~11 MB) overrun the loopback socket buffers of a client that has not
// read yet, so most of the replay must wait at the gateway: more than a queue holds.
const MISSED = 900;
const LIVE = 20;
const STEP = 50;
const PAD = 'x'.repeat(12 * 1024);
const CHANNEL = 'replay';

const offsets = (c: TestClient): number[] => c.messages(CHANNEL).map((m) => m.offset!);
const numbers = (c: TestClient): number[] => c.messages(CHANNEL).map((m) => (m.data as { n: number }).n);
/** hubcast_messages_dropped_total summed over its reasons. */
async function dropped(gateway: { metrics(): Promise<Map<string, number>> }): Promise<number> {
  let sum = 0;
  for (const [series, value] of await gateway.metrics()) if (series.startsWith('hubcast_messages_dropped_total{')) sum += value;
  return sum;
}
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('recovery replay pacing', { timeout: 120_000 }, () => {
  const fx = useFixture();

  /** Publishes messages numbered from..to in order, awaiting an ack every STEP so nothing piles up. */
  async function publish(publisher: TestClient, from: number, to: number): Promise<void> {
    for (let n = from; n <= to; n++) {
      const data = { n, pad: PAD };
      if (n % STEP !== 0 && n !== to) {
        publisher.send({ op: 'publish', channel: CHANNEL, data });
        continue;
      }
      const ack = await publisher.request({ op: 'publish', channel: CHANNEL, data }, 20_000);
      assert.equal(ack.op, 'ack', JSON.stringify(ack));
    }
  }

  test('a client that missed 900 messages gets all of them, then live ones, in order, nothing dropped', async () => {
    const gateway = await fx.gateway({
      REDIS_PREFIX: uniquePrefix(),
      HISTORY_SIZE: '1000',
      RECOVERY_MAX_MESSAGES: '1000',
      // The returning client does not read until its replay has piled up; it must not be evicted meanwhile.
      SLOW_CLIENT_EVICT_MS: '60000',
    });
    const droppedBefore = await dropped(gateway);
    assert.equal(droppedBefore, 0);

    const away = await fx.connect(gateway.ws());
    const position = await away.request({ op: 'subscribe', channel: CHANNEL });
    assert.equal(position.op, 'ack');
    assert.equal(position.offset, 0);
    away.close();
    await away.closed;

    const publisher = await fx.connect(gateway.ws());
    await publish(publisher, 1, MISSED);

    const back = await fx.connect(gateway.ws());
    back.socket.pause(); // not reading yet: the replay must wait at the gateway, not overflow its queue
    back.send({ op: 'subscribe', channel: CHANNEL, id: 'resume', since: { offset: 0, epoch: position.epoch } });
    await waitUntil(async () => (await gateway.metric('hubcast_recoveries_total{result="recovered"}')) === 1, {
      what: 'the replay to be handed to the client',
      timeoutMs: 30_000,
    });
    assert.equal(await dropped(gateway), droppedBefore, 'none of the replay dropped while the client does not read');
    assert.ok((await gateway.metric('hubcast_queue_depth_messages')) > 256, 'more of it waits than QUEUE_MAX_MESSAGES');
    // Live messages published while the replay is still waiting go out behind it.
    await publish(publisher, MISSED + 1, MISSED + LIVE / 2);
    back.socket.resume();
    await publish(publisher, MISSED + LIVE / 2 + 1, MISSED + LIVE);

    await back.waitForCount(() => back.messages(CHANNEL).length, MISSED + LIVE, 60_000, 'the replay and the live messages');
    const ack = back.frames.find((f) => f.id === 'resume');
    assert.equal(ack?.op, 'ack', JSON.stringify(ack));
    assert.equal(ack.recovered, true, JSON.stringify(ack));
    assert.equal(ack.offset, MISSED);
    assert.ok(back.frames.indexOf(ack) < back.frames.findIndex((f) => f.op === 'message'), 'the ack comes before the replay');
    assert.deepEqual(offsets(back), range(1, MISSED + LIVE), 'every offset once, in order: replay, then live');
    assert.deepEqual(numbers(back), range(1, MISSED + LIVE));
    assert.equal(await dropped(gateway), droppedBefore, 'nothing dropped');
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="recovered"}'), 1);
    await waitUntil(async () => (await gateway.metric('hubcast_queue_depth_messages')) === 0, { what: 'the queue to empty' });
    assert.equal(await gateway.metric('hubcast_clients_evicted_total{reason="slow_consumer"}'), 0);
  });
});

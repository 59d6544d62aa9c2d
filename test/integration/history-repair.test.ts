// The history scripts and the gap-repair core together on a real Redis, through a minimal host
// (the gateway's own wiring comes later): a subscriber connection killed (CLIENT KILL TYPE pubsub)
// while publishing goes on still yields every message once, in order, repaired from the stream;
// a tail published while it was down is found by the top check after it resubscribes; and a
// history lost meanwhile (FLUSHALL) is reported as one lost event instead of skipped silently.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type TestContext, after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisHistory } from '../../services/gateway/src/bus/history-redis.js';
import { GapRepair, type RepairCounts } from '../../services/gateway/src/bus/position-repair.js';
import {
  type Position,
  hasPosition,
  messageHead,
  readPositioned,
} from '../../services/gateway/src/bus/position.js';
import { type RedisHandle, startRedis, uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const head = (n: number): Buffer => messageHead(Buffer.from(`{"op":"message","channel":"c","data":${n}}`));

interface Receiver {
  /** data of each delivered message, "lost E:N" for each lost event, in order. */
  readonly out: (number | string)[];
  readonly counts: RepairCounts;
  /** Resolves at the next resubscription (after the top check was sent). */
  readonly resubscribed: () => Promise<void>;
  readonly sub: Redis;
}

describe('history repair on Redis', { timeout: 60_000 }, () => {
  let redis: RedisHandle;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.close());

  /** A subscriber wired to GapRepair the way a gateway would be: repairs and top checks read the stream. */
  async function receiver(t: TestContext, history: RedisHistory, pubsub: string): Promise<Receiver> {
    const out: (number | string)[] = [];
    const counts: RepairCounts = { busGapsRepaired: 0, busGaps: 0, busLost: 0, busDuplicates: 0, busRewound: 0 };
    const repair = new GapRepair(
      {
        deliver: (_c, m) => out.push(JSON.parse(m.bytes.toString()).data as number),
        lost: (_c, p: Position) => out.push(`lost ${p.offset}`),
        repair: (channel, id, epoch, afterOffset, to) => {
          history.since(channel, afterOffset, epoch, to - afterOffset).then(
            (read) => repair.repaired(channel, id, read),
            () => repair.repairFailed(channel, id),
          );
        },
      },
      counts,
    );
    const sub = new Redis(redis.url, { autoResubscribe: false, retryStrategy: () => 20, connectionName: 'test-sub' });
    sub.on('error', () => undefined);
    t.after(() => sub.disconnect());
    let waiting: (() => void)[] = [];
    sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      assert.ok(hasPosition(message));
      repair.accept('c', readPositioned(message));
    });
    sub.on('close', () => repair.connectionLost());
    let first = true;
    sub.on('ready', () => {
      void sub.subscribe(pubsub).then(async () => {
        if (first) repair.watch('c');
        else repair.top('c', await history.top('c'));
        first = false;
        for (const w of waiting.splice(0)) w();
      });
    });
    const ready = new Promise<void>((resolve) => waiting.push(resolve));
    await ready;
    return {
      out,
      counts,
      sub,
      resubscribed: () => new Promise<void>((resolve) => (waiting = [...waiting, resolve])),
    };
  }

  /** Closes the subscriber connection and waits until it is closed (connect() brings it back). */
  async function down(sub: Redis): Promise<void> {
    const closed = once(sub, 'close');
    sub.disconnect(false);
    await closed;
  }

  async function killSubscriber(): Promise<void> {
    const admin = redis.client();
    await admin.client('KILL', 'TYPE', 'pubsub');
  }

  test('a killed subscriber connection under steady publishing: every message once, in order, repaired', async (t) => {
    const prefix = uniquePrefix();
    const history = new RedisHistory(redis.client(), { prefix, size: 1000, ttlS: 300, publishCommand: 'PUBLISH' });
    const pubsub = `${prefix}{c}`;
    const r = await receiver(t, history, pubsub);
    const back = r.resubscribed();
    for (let i = 1; i <= 300; i++) {
      await history.publish('c', pubsub, head(i));
      if (i === 100) await killSubscriber();
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await back;
    await waitUntil(() => r.out.length >= 300, { what: '300 messages' });
    assert.deepEqual(r.out, Array.from({ length: 300 }, (_, i) => i + 1));
    assert.ok(r.counts.busGapsRepaired > 0, 'the outage left a gap that was repaired');
    assert.deepEqual([r.counts.busGaps, r.counts.busLost], [0, 0]);
  });

  /** Publishes 1..3, sees them delivered, then takes the subscriber down (connect() brings it back). */
  async function deliveredThreeThenDown(t: TestContext) {
    const prefix = uniquePrefix();
    const history = new RedisHistory(redis.client(), { prefix, size: 1000, ttlS: 300, publishCommand: 'PUBLISH' });
    const pubsub = `${prefix}{c}`;
    const r = await receiver(t, history, pubsub);
    const publish = (n: number): Promise<Position> => history.publish('c', pubsub, head(n));
    for (let i = 1; i <= 3; i++) await publish(i);
    await waitUntil(() => r.out.length === 3, { what: '3 messages' });
    const back = r.resubscribed();
    await down(r.sub);
    return { r, prefix, publish, back };
  }

  test('a tail published while the subscriber was down is found by the top check', async (t) => {
    const { r, publish, back } = await deliveredThreeThenDown(t);
    for (let i = 4; i <= 6; i++) await publish(i); // nothing follows them
    void r.sub.connect();
    await back;
    await waitUntil(() => r.out.length === 6, { what: 'the tail' });
    assert.deepEqual(r.out, [1, 2, 3, 4, 5, 6]);
    assert.equal(r.counts.busGapsRepaired, 3);
  });

  test('history lost while the subscriber was down: one lost event, then the new epoch', async (t) => {
    const { r, prefix, publish, back } = await deliveredThreeThenDown(t);
    await publish(4);
    await redis.client().del(`${prefix}{c}:meta`, `${prefix}{c}:stream`); // as a restart without persistence would
    await publish(5);
    void r.sub.connect();
    await back;
    await publish(6);
    await waitUntil(() => r.out.length === 6, { what: 'the lost event and the messages of the new epoch' });
    // 4 went with the old epoch: one lost event, at the start of the new epoch (offset 0); 5 is
    // offset 1 of the new one, still in history, so it is repaired; 6 follows live.
    assert.deepEqual(r.out, [1, 2, 3, 'lost 0', 5, 6]);
    assert.equal(r.counts.busLost, 1);
    assert.equal(r.counts.busGapsRepaired, 1);
  });
});

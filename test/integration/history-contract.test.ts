// One contract for both history stores: the same operations on the Redis scripts and on the
// in-process history give the same answers (epochs compared by identity, not by name), so the
// memory bus recovers exactly as the Redis bus does.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HistoryRead, HistoryReader } from '../../services/gateway/src/bus/history-read.js';
import { MemoryHistory } from '../../services/gateway/src/bus/history-memory.js';
import { RedisHistory } from '../../services/gateway/src/bus/history-redis.js';
import { EpochSource, type Position, messageHead } from '../../services/gateway/src/bus/position.js';
import { type RedisHandle, startRedis, uniquePrefix } from '../helpers/redis.js';

const SIZE = 5;

interface Store extends HistoryReader {
  publish(channel: string, head: Buffer): Promise<Position>;
  /** Loses the channel's history as Redis may (every key gone). */
  lose(channel: string): Promise<void>;
}

function memoryStore(): Store {
  let now = 0;
  const epochs = new EpochSource();
  const h = new MemoryHistory({ size: SIZE, ttlMs: 1000 }, () => epochs.next());
  return {
    publish: async (channel, head) => h.publish(channel, head, now).position,
    top: async (channel) => h.top(channel, now),
    since: async (channel, offset, epoch, limit) => h.since(channel, offset, epoch, limit, now),
    lose: async () => {
      now += 1000; // every channel expires
    },
  };
}

function redisStore(redis: RedisHandle): Store {
  const conn = redis.client();
  const prefix = uniquePrefix();
  const h = new RedisHistory(conn, { prefix, size: SIZE, ttlS: 300, publishCommand: 'PUBLISH' });
  return {
    publish: (channel, head) => h.publish(channel, `${prefix}${channel}`, head),
    top: (channel) => h.top(channel),
    since: (channel, offset, epoch, limit) => h.since(channel, offset, epoch, limit),
    lose: async (channel) => {
      await conn.del(`${prefix}{${channel}}:meta`, `${prefix}{${channel}}:stream`);
    },
  };
}

const head = (channel: string, n: number): Buffer => messageHead(Buffer.from(`{"op":"message","channel":"${channel}","data":${n}}`));

/** Runs one scenario and returns its answers with epochs renamed e0, e1 ... in order of appearance. */
async function scenario(store: Store): Promise<unknown[]> {
  const names = new Map<string, string>();
  const name = (epoch: string): string => {
    if (!names.has(epoch)) names.set(epoch, `e${names.size}`);
    return names.get(epoch)!;
  };
  const out: unknown[] = [];
  const show = (r: HistoryRead): unknown => ({
    epoch: name(r.epoch),
    top: r.top,
    complete: r.complete,
    messages: r.messages.map((m) => [m.offset, m.bytes.toString().replace(r.epoch, name(r.epoch))]),
  });
  const top0 = await store.top('c');
  out.push(['top of a fresh channel', top0.offset, name(top0.epoch)]);
  for (let i = 1; i <= 7; i++) {
    const p = await store.publish('c', head('c', i));
    out.push(['publish', p.offset, name(p.epoch)]);
  }
  const epoch = top0.epoch;
  for (const [offset, limit] of [[0, 100], [1, 100], [2, 100], [3, 3], [6, 100], [7, 100], [8, 100], [2, 0]] as const) {
    out.push([`since ${offset} limit ${limit}`, show(await store.since('c', offset, epoch, limit))]);
  }
  out.push(['foreign epoch', show(await store.since('c', 2, 'foreign', 100))]);
  out.push(['any epoch', show(await store.since('c', 4, null, 100))]);
  await store.lose('c');
  const lostTop = await store.top('c');
  out.push(['after the loss', lostTop.offset, name(lostTop.epoch)]);
  out.push(['old epoch after the loss', show(await store.since('c', 7, epoch, 100))]);
  const p = await store.publish('c', head('c', 8));
  out.push(['publish after the loss', p.offset, name(p.epoch)]);
  return out;
}

describe('history stores keep one contract', { timeout: 60_000 }, () => {
  let redis: RedisHandle;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.close());

  test('the Redis scripts and the in-process history answer the same', async () => {
    const fromRedis = await scenario(redisStore(redis));
    const fromMemory = await scenario(memoryStore());
    assert.deepEqual(fromMemory, fromRedis);
    // And the answers are the contract, not merely equal: spot-check the key ones.
    assert.deepEqual(fromRedis[0], ['top of a fresh channel', 0, 'e0']);
    assert.deepEqual(fromRedis[7], ['publish', 7, 'e0']);
    const since2 = fromRedis[10] as [string, { complete: boolean; messages: [number, string][] }];
    assert.deepEqual([since2[1].complete, since2[1].messages.map((m) => m[0])], [true, [3, 4, 5, 6, 7]]);
    assert.deepEqual(fromRedis.at(-3), ['after the loss', 0, 'e1']);
    assert.deepEqual(fromRedis.at(-1), ['publish after the loss', 1, 'e1']);
  });
});

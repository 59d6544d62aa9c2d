// The history scripts on a real Redis: offsets without holes under one stable epoch, a new epoch
// whenever the history is lost (flushed, expired, one key evicted apart), exact trimming, expiry
// on both keys, no offset shared by concurrent publishers, and the subscriber receiving exactly
// the bytes the stream holds.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisHistory, type RedisHistoryOptions, historyKeys } from '../../services/gateway/src/bus/history-redis.js';
import {
  hasPosition,
  messageData,
  messageHead,
  positionPayload,
  readEpoch,
  readOffset,
} from '../../services/gateway/src/bus/position.js';
import { type RedisHandle, startRedis, uniquePrefix } from '../helpers/redis.js';
import { waitUntil, within } from '../helpers/wait.js';

const head = (channel: string, data: unknown): Buffer =>
  messageHead(Buffer.from(`{"op":"message","channel":"${channel}","data":${JSON.stringify(data)}}`));

describe('history on Redis', { timeout: 60_000 }, () => {
  let redis: RedisHandle;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.close());

  function history(conn: Redis, options: Partial<RedisHistoryOptions> = {}): RedisHistory {
    return new RedisHistory(conn, { prefix: uniquePrefix(), size: 100, ttlS: 300, publishCommand: 'PUBLISH', ...options });
  }

  /** A raw subscriber collecting [channel, message] pairs. */
  async function subscriber(channel: string, sharded = false): Promise<Buffer[]> {
    const sub = redis.client();
    const seen: Buffer[] = [];
    sub.on(sharded ? 'smessageBuffer' : 'messageBuffer', (_c: Buffer, m: Buffer) => seen.push(m));
    if (sharded) await sub.ssubscribe(channel);
    else await sub.subscribe(channel);
    return seen;
  }

  test('offsets run 1, 2, 3 without holes under one stable epoch', async () => {
    const h = history(redis.client());
    const a = await h.publish('a', 'x', head('a', 1));
    const b = await h.publish('a', 'x', head('a', 2));
    const c = await h.publish('a', 'x', head('a', 3));
    assert.deepEqual([a.offset, b.offset, c.offset], [1, 2, 3]);
    assert.equal(a.epoch, b.epoch);
    assert.equal(b.epoch, c.epoch);
    assert.match(a.epoch, /^[A-Za-z0-9_-]{12}$/);
    const other = await h.publish('b', 'x', head('b', 1));
    assert.equal(other.offset, 1, 'offsets are per channel');
    assert.notEqual(other.epoch, a.epoch);
  });

  test('reading a channel never published creates its epoch, and the first publish keeps it', async () => {
    const h = history(redis.client());
    const first = await h.top('fresh');
    assert.equal(first.offset, 0);
    assert.deepEqual(await h.top('fresh'), first, 'a second read sees the same epoch');
    const published = await h.publish('fresh', 'x', head('fresh', 1));
    assert.deepEqual(published, { offset: 1, epoch: first.epoch });
    const read = await h.since('fresh', 0, first.epoch, 10);
    assert.equal(read.complete, true, 'a subscriber acked with offset 0 recovers');
    assert.deepEqual(read.messages.map((m) => m.offset), [1]);
  });

  test('the epoch changes when the history is lost: FLUSHALL, the meta or the stream gone alone, expiry', async () => {
    const conn = redis.client();
    const prefix = uniquePrefix();
    const h = history(conn, { prefix, ttlS: 1 });
    const keys = historyKeys(prefix, 'lost');
    const e1 = (await h.publish('lost', 'x', head('lost', 1))).epoch;
    await h.publish('lost', 'x', head('lost', 2));

    await conn.del(keys.stream); // the stream evicted apart from its meta
    const e2 = await h.publish('lost', 'x', head('lost', 3));
    assert.equal(e2.offset, 1);
    assert.notEqual(e2.epoch, e1);

    await conn.del(keys.meta); // the meta evicted: the stale stream must not hold offset 1 of the new epoch
    const e3 = await h.publish('lost', 'x', head('lost', 4));
    assert.equal(e3.offset, 1);
    assert.notEqual(e3.epoch, e2.epoch);
    const read = await h.since('lost', 0, e3.epoch, 10);
    assert.deepEqual(read.messages.map((m) => JSON.parse(m.bytes.toString()).data), [4], 'the old stream is gone');

    await waitUntil(async () => (await conn.exists(keys.meta, keys.stream)) === 0, { timeoutMs: 10_000, what: 'the keys to expire' });
    const e4 = await h.publish('lost', 'x', head('lost', 5));
    assert.equal(e4.offset, 1);
    assert.notEqual(e4.epoch, e3.epoch);

    await conn.flushall();
    const e5 = await h.publish('lost', 'x', head('lost', 6));
    assert.equal(e5.offset, 1, 'after FLUSHALL (the script cache survives it; a restart is covered by EVAL fallback)');
    assert.notEqual(e5.epoch, e4.epoch);
  });

  test('fence: a top below the observed offset under the same epoch is lost history (new epoch from 0); otherwise nothing changes', async () => {
    const h = history(redis.client());
    for (let i = 1; i <= 5; i++) await h.publish('f', 'x', head('f', i));
    const { epoch } = await h.top('f');
    assert.deepEqual(await h.fence('f', { offset: 5, epoch }), { offset: 5, epoch, found: 5 }, 'at the observed offset: not behind');
    assert.deepEqual(await h.fence('f', { offset: 9, epoch: 'another' }), { offset: 5, epoch, found: 5 }, 'another epoch observed: not this history');
    // A promoted replica that missed offsets 6 and 7 this gateway heard:
    const moved = await h.fence('f', { offset: 7, epoch });
    assert.deepEqual([moved.offset, moved.found], [0, 5]);
    assert.notEqual(moved.epoch, epoch);
    assert.match(moved.epoch, /^[A-Za-z0-9_-]{12}$/);
    assert.deepEqual(await h.top('f'), { offset: 0, epoch: moved.epoch }, 'the new epoch stands');
    const next = await h.publish('f', 'x', head('f', 6));
    assert.deepEqual(next, { offset: 1, epoch: moved.epoch }, 'offsets start over under the new epoch: none is reused under the old one');
    assert.deepEqual((await h.since('f', 3, epoch, 10)).messages, [], 'a recovery in the old epoch finds nothing');
    assert.equal((await h.since('f', 3, epoch, 10)).complete, false);
  });

  test('a Redis that lost its script cache runs the script again (EVALSHA falls back to EVAL)', async () => {
    const conn = redis.client();
    const h = history(conn);
    await h.publish('s', 'x', head('s', 1));
    await conn.script('FLUSH');
    assert.equal((await h.publish('s', 'x', head('s', 2))).offset, 2);
  });

  test('reads see exactly the last HISTORY_SIZE messages; the stream is trimmed near it; a read past them is incomplete', async (t) => {
    const conn = redis.client();
    const prefix = uniquePrefix();
    const h = history(conn, { prefix, size: 5 });
    let epoch = '';
    for (let i = 1; i <= 12; i++) epoch = (await h.publish('trim', 'x', head('trim', i))).epoch;
    // MAXLEN ~ trims whole nodes (stream-node-max-entries, 100 by default): show it trims at all.
    await conn.config('SET', 'stream-node-max-entries', '2');
    t.after(() => conn.config('SET', 'stream-node-max-entries', '100'));
    for (let i = 13; i <= 40; i++) await h.publish('trim', 'x', head('trim', i));
    const kept = await conn.xlen(historyKeys(prefix, 'trim').stream);
    assert.ok(kept >= 5 && kept <= 8, `${kept} entries kept for HISTORY_SIZE 5`);
    for (let i = 1; i <= 12; i++) epoch = (await h.publish('trim2', 'x', head('trim2', i))).epoch;
    const trim = 'trim2';
    const all = await h.since(trim, 0, epoch, 100);
    assert.equal(all.top, 12);
    assert.deepEqual(all.messages.map((m) => m.offset), [8, 9, 10, 11, 12]);
    assert.equal(all.complete, false, 'offsets 1..7 are gone');
    const tail = await h.since(trim, 7, epoch, 100);
    assert.equal(tail.complete, true);
    const limited = await h.since(trim, 7, epoch, 3);
    assert.deepEqual(limited.messages.map((m) => m.offset), [8, 9, 10]);
    assert.equal(limited.complete, false, 'more than limit');
    const foreign = await h.since(trim, 7, 'another-epoch', 100);
    assert.deepEqual([foreign.messages.length, foreign.complete, foreign.top, foreign.epoch], [0, false, 12, epoch]);
    const beyond = await h.since(trim, 13, epoch, 100);
    assert.deepEqual([beyond.messages.length, beyond.complete], [0, false]);
    const atTop = await h.since(trim, 12, epoch, 100);
    assert.deepEqual([atTop.messages.length, atTop.complete], [0, true]);
  });

  test('both keys expire HISTORY_TTL_S after the last publish', async () => {
    const conn = redis.client();
    const prefix = uniquePrefix();
    const h = history(conn, { prefix, ttlS: 120 });
    await h.publish('ttl', 'x', head('ttl', 1));
    const keys = historyKeys(prefix, 'ttl');
    for (const key of [keys.meta, keys.stream]) {
      const ttl = await conn.ttl(key);
      assert.ok(ttl > 100 && ttl <= 120, `${key} expires in ${ttl} s`);
    }
  });

  test('concurrent publishers on separate connections never share an offset', async () => {
    const prefix = uniquePrefix();
    const publishers = [0, 1, 2].map(() => history(redis.client(), { prefix, size: 1000 }));
    const results = await Promise.all(
      publishers.flatMap((h, p) => Array.from({ length: 150 }, (_, i) => h.publish('race', 'x', head('race', `${p}.${i}`)))),
    );
    const offsets = results.map((r) => r.offset).sort((x, y) => x - y);
    assert.deepEqual(offsets, Array.from({ length: 450 }, (_, i) => i + 1));
    assert.equal(new Set(results.map((r) => r.epoch)).size, 1);
    const read = await publishers[0]!.since('race', 0, results[0]!.epoch, 1000);
    assert.equal(read.complete, true);
  });

  test('the subscriber receives the header and exactly the stored bytes (PUBLISH and SPUBLISH)', async () => {
    for (const command of ['PUBLISH', 'SPUBLISH'] as const) {
      const h = history(redis.client(), { publishCommand: command });
      const pubsub = `${uniquePrefix()}{bytes}`;
      const seen = await subscriber(pubsub, command === 'SPUBLISH');
      const data = { text: 'é ✓ "quoted"', n: [1, 2] };
      const p1 = await h.publish('bytes', pubsub, head('bytes', data));
      const p2 = await h.publish('bytes', pubsub, head('bytes', 'two'));
      await within(waitUntil(() => seen.length === 2, { what: 'two messages' }), 5000, command);
      const read = await h.since('bytes', 0, p1.epoch, 10);
      seen.forEach((m, i) => {
        assert.ok(hasPosition(m));
        assert.equal(readOffset(m), [p1, p2][i]!.offset);
        assert.equal(readEpoch(m), p1.epoch);
        assert.deepEqual(positionPayload(m), read.messages[i]!.bytes, 'pub/sub bytes = stored bytes');
      });
      const frame = JSON.parse(read.messages[0]!.bytes.toString());
      assert.deepEqual(frame, { op: 'message', channel: 'bytes', data, offset: 1, epoch: p1.epoch });
      assert.deepEqual(JSON.parse(messageData(read.messages[0]!.bytes, 'bytes', 1, p1.epoch).toString()), data);
    }
  });
});

// The pure pieces of sharded pub/sub: slots as Redis computes them, one-slot SSUBSCRIBE groups,
// per-shard readiness, the failover refresh schedule and the reconnect bound.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  FAILOVER_REFRESH,
  ReconnectBound,
  RefreshSchedule,
  SLOTS,
  ShardReadiness,
  UNKNOWN_SHARD,
  groupBySlot,
  isSubscriptionLost,
  keySlot,
  mastersOf,
  nameOnShard,
} from '../../services/gateway/src/bus/shards.js';

describe('keySlot', () => {
  test('matches the Redis Cluster specification vectors', () => {
    // CRC16-XMODEM("123456789") is 0x31C3; the others are CLUSTER KEYSLOT answers from Redis 7.
    assert.equal(keySlot('123456789'), 0x31c3 % SLOTS);
    assert.equal(keySlot('foo'), 12182);
    assert.equal(keySlot('bar'), 5061);
    assert.equal(keySlot('hello'), 866);
    assert.equal(keySlot(''), 0);
  });

  test('hashes only the first non-empty hash tag', () => {
    assert.equal(keySlot('{user1000}.following'), keySlot('user1000'));
    assert.equal(keySlot('hist:{news}:top'), keySlot('{news}'));
    assert.notEqual(keySlot('foo{}{bar}'), keySlot('bar'), 'an empty first tag hashes the whole key');
    assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'), 'the tag runs from the first { to the first } after it');
    assert.equal(keySlot('foo{bar}{zap}'), keySlot('bar'));
    assert.equal(keySlot('{unclosed'), keySlot(Buffer.from('{unclosed')));
  });

  test('hashes UTF-8 bytes, strings and buffers alike, always within 0..16383', () => {
    assert.equal(keySlot('café'), keySlot(Buffer.from('café', 'utf8')));
    for (let i = 0; i < 2000; i++) {
      const slot = keySlot(`channel-${i}`);
      assert.ok(Number.isInteger(slot) && slot >= 0 && slot < SLOTS);
    }
  });
});

describe('groupBySlot', () => {
  test('each group names channels of one slot, every channel once, groups bounded', () => {
    const channels = Array.from({ length: 500 }, (_, i) => `c${i}`).concat(['{a}x', '{a}y', '{a}z']);
    const groups = groupBySlot(channels, keySlot, 2);
    assert.deepEqual(groups.flat().sort(), [...channels].sort());
    for (const g of groups) {
      assert.ok(g.length >= 1 && g.length <= 2);
      assert.equal(new Set(g.map((c) => keySlot(c))).size, 1);
    }
    const tagged = groups.filter((g) => g[0]!.startsWith('{a}'));
    assert.deepEqual(tagged, [['{a}x', '{a}y'], ['{a}z']], 'same slot, input order, split at the batch size');
  });

  test('nothing in, nothing out', () => {
    assert.deepEqual(groupBySlot([]), []);
  });
});

describe('ShardReadiness', () => {
  // Three masters, as the local cluster has them.
  const threeMasters = (slot: number): string => (slot < 5461 ? 'A' : slot < 10923 ? 'B' : 'C');
  const slotOf = (c: string): number => Number(c.split(':')[1]);

  test('ready once every wanted channel is confirmed on the master serving its slot', () => {
    const r = new ShardReadiness(threeMasters, slotOf);
    assert.equal(r.ready, true, 'nothing wanted');
    r.want('x:1');
    r.want('y:6000');
    r.want('z:16000');
    r.want('z:16000');
    assert.equal(r.size, 3);
    assert.equal(r.ready, false);
    assert.deepEqual([...r.shardStates()], [['A', false], ['B', false], ['C', false]]);
    assert.equal(r.confirm('x:1', 'B'), false, 'a confirmation from another master does not count');
    assert.equal(r.confirm('x:1', 'A'), true);
    assert.equal(r.confirm('x:1', 'A'), false, 'once');
    r.confirm('y:6000', 'B');
    assert.equal(r.isShardReady('A'), true);
    assert.equal(r.isShardReady('C'), false);
    assert.equal(r.ready, false);
    r.confirm('z:16000', 'C');
    assert.equal(r.ready, true);
    assert.equal(r.confirm('nope:1', 'A'), false, 'a channel not wanted');
  });

  test('losing a shard unconfirms exactly its channels and names them', () => {
    const r = new ShardReadiness(threeMasters, slotOf);
    for (const c of ['a:1', 'b:2', 'c:6000']) {
      r.want(c);
      r.confirm(c, r.shardOf(c)!);
    }
    assert.equal(r.ready, true);
    assert.deepEqual(r.lose('A').sort(), ['a:1', 'b:2']);
    assert.equal(r.isShardReady('A'), false);
    assert.equal(r.isShardReady('B'), true);
    assert.equal(r.isConfirmed('c:6000'), true);
    assert.deepEqual(r.lose('A').sort(), ['a:1', 'b:2'], 'losing it again changes nothing but names them again');
    r.confirm('a:1', 'A');
    r.confirm('b:2', 'A');
    assert.equal(r.ready, true);
    assert.deepEqual(r.lose('nobody'), []);
  });

  test('a slot moving to another master moves its channels there unconfirmed; the rest keep their state', () => {
    let owner = threeMasters;
    const r = new ShardReadiness((s) => owner(s), slotOf);
    for (const c of ['a:1', 'b:6000', 'c:16000']) {
      r.want(c);
      r.confirm(c, r.shardOf(c)!);
    }
    // A's replica A2 was promoted.
    owner = (slot) => (slot < 5461 ? 'A2' : threeMasters(slot));
    assert.deepEqual(r.remap(owner), ['a:1']);
    assert.equal(r.shardOf('a:1'), 'A2');
    assert.equal(r.isShardReady('A'), true, 'the old master holds nothing now');
    assert.deepEqual([...r.shardStates().keys()].sort(), ['A2', 'B', 'C']);
    assert.equal(r.ready, false);
    assert.equal(r.confirm('a:1', 'A'), false, 'a late reply from the old master');
    assert.equal(r.confirm('a:1', 'A2'), true);
    assert.equal(r.ready, true);
    assert.deepEqual(r.remap(owner), [], 'the same map moves nothing');
  });

  test('channels wait on UNKNOWN_SHARD until the slot map is known; dropping settles the counts', () => {
    const r = new ShardReadiness(() => undefined, slotOf);
    r.want('a:1');
    r.want('b:2');
    assert.equal(r.shardOf('a:1'), UNKNOWN_SHARD);
    assert.equal(r.isShardReady(UNKNOWN_SHARD), false);
    assert.deepEqual(r.remap(threeMasters).sort(), ['a:1', 'b:2']);
    r.confirm('a:1', 'A');
    r.drop('b:2');
    assert.equal(r.ready, true, 'a dropped unconfirmed channel no longer holds readiness back');
    r.drop('a:1');
    r.drop('a:1');
    assert.equal(r.size, 0);
    assert.deepEqual([...r.shardStates()], []);
    assert.equal(r.ready, true);
  });
});

describe('failover refresh', () => {
  test('isSubscriptionLost matches what ioredis reports for a pushed sunsubscribe, nothing else', () => {
    const pushed = new Error('Command queue state error. If you can reproduce this, please report it. Last reply: sunsubscribe,{chan-a},0');
    assert.equal(isSubscriptionLost(pushed), true);
    assert.equal(isSubscriptionLost(new Error('connect ECONNREFUSED 127.0.0.1:7000')), false);
    assert.equal(isSubscriptionLost(new Error('Command queue state error. Last reply: message,x,y')), false);
  });

  test('the schedule refreshes at each point over about 1.5 s, and no more', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let refreshes = 0;
    const schedule = new RefreshSchedule(() => refreshes++);
    t.after(() => schedule.settle());
    schedule.trigger();
    assert.equal(schedule.running, true);
    t.mock.timers.tick(0);
    assert.equal(refreshes, 1, 'one at once');
    const last = FAILOVER_REFRESH[FAILOVER_REFRESH.length - 1]!;
    assert.ok(last >= 1000 && last <= 2000, 'retried over about 1.5 s');
    t.mock.timers.tick(last - 1);
    assert.equal(refreshes, FAILOVER_REFRESH.length - 1);
    t.mock.timers.tick(1);
    assert.equal(refreshes, FAILOVER_REFRESH.length);
    assert.equal(schedule.running, false);
    t.mock.timers.tick(60_000);
    assert.equal(refreshes, FAILOVER_REFRESH.length, 'nothing after the schedule');
    assert.equal(schedule.refreshes, FAILOVER_REFRESH.length);
  });

  test('settle() stops the remaining refreshes; a new trigger starts over', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let refreshes = 0;
    const schedule = new RefreshSchedule(() => refreshes++, [0, 100, 200]);
    t.after(() => schedule.settle());
    schedule.trigger();
    t.mock.timers.tick(100);
    assert.equal(refreshes, 2);
    schedule.settle();
    t.mock.timers.tick(10_000);
    assert.equal(refreshes, 2);
    schedule.trigger();
    t.mock.timers.tick(150);
    schedule.trigger(); // a second failover: its own retries, the first one's are dropped
    t.mock.timers.tick(10_000);
    assert.equal(refreshes, 2 + 2 + 3);
  });
});

describe('ReconnectBound', () => {
  test('gaps double per failure up to the maximum; success resets them', () => {
    const bound = new ReconnectBound({ baseMs: 100, maxMs: 1000 });
    assert.equal(bound.delay(0), 0, 'the first attempt runs at once');
    const gaps: number[] = [];
    let now = 0;
    for (let i = 0; i < 7; i++) {
      bound.failed(now);
      gaps.push(bound.delay(now));
      now += bound.delay(now);
      assert.equal(bound.delay(now), 0, 'due at the end of the gap');
    }
    assert.deepEqual(gaps, [100, 200, 400, 800, 1000, 1000, 1000]);
    bound.failed(now);
    assert.equal(bound.delay(now + 300), 700, 'an attempt asked for mid-gap waits for the rest of it');
    bound.succeeded();
    assert.equal(bound.delay(now), 0);
    bound.failed(now);
    assert.equal(bound.delay(now), 100);
  });

  test('attempts against a dead master stay under a rate a tight loop would exceed', () => {
    // ioredis asks again as soon as an attempt fails; with the bound, 10 s of asking runs at most this many.
    const bound = new ReconnectBound();
    let attempts = 0;
    for (let now = 0; now < 10_000; now++) {
      if (bound.delay(now) > 0) continue;
      attempts++;
      bound.failed(now);
    }
    assert.ok(attempts <= 15, `${attempts} attempts in 10 s`);
    assert.ok(attempts >= 10, 'still tried about once a second, so a promoted replica is found');
  });
});

describe('nameOnShard and mastersOf', () => {
  // Three masters as redis-cli --cluster create splits the slots, one more serving nothing.
  const owner = (slot: number): string | undefined => (slot < 5461 ? 'a:1' : slot < 10923 ? 'b:2' : 'c:3');
  const slotOf = (name: string): number => keySlot(`hubcast:{${name}}`);

  test('each master gets a name whose slot it serves, the first such n', () => {
    for (const shard of ['a:1', 'b:2', 'c:3']) {
      const name = nameOnShard('#probe.x', shard, owner, slotOf);
      assert.ok(name !== undefined);
      assert.equal(owner(slotOf(name)), shard);
      const n = Number(name.split('.').pop());
      for (let i = 0; i < n; i++) assert.notEqual(owner(slotOf(`#probe.x.${i}`)), shard, 'no smaller n lands there');
    }
  });

  test('a master serving no slot gets none; a master serving one slot still gets one', () => {
    assert.equal(nameOnShard('#probe.x', 'd:4', owner, slotOf), undefined);
    const one = (slot: number): string => (slot === 777 ? 'one:1' : 'a:1');
    const name = nameOnShard('#probe.x', 'one:1', one, slotOf);
    assert.equal(name === undefined ? undefined : slotOf(name), 777);
  });

  test('mastersOf lists every master serving a slot, once, in slot order', () => {
    assert.deepEqual(mastersOf(owner), ['a:1', 'b:2', 'c:3']);
    assert.deepEqual(mastersOf(() => undefined), []);
  });
});

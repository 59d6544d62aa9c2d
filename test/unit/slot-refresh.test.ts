// The slot-refresh shell against a fake Cluster: every refresh ioredis asks for passes the
// reconnect bound (merged while it waits), a pushed sunsubscribe starts the failover schedule,
// and uninstall() gives the cluster its own refreshSlotsCache back.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import type { Cluster } from 'ioredis';
import { FAILOVER_REFRESH, ReconnectBound } from '../../services/gateway/src/bus/shards.js';
import { SlotRefresh } from '../../services/gateway/src/bus/slot-refresh.js';

type Callback = (err?: Error | null) => void;

/** What SlotRefresh uses of a Cluster: its events and refreshSlotsCache, counted. */
class FakeCluster extends EventEmitter {
  refreshes = 0;
  refreshSlotsCache(callback?: Callback): void {
    this.refreshes++;
    callback?.(null);
  }
}

const SUNSUBSCRIBE = new Error('Command queue state error. If you can reproduce this, please report it. Last reply: sunsubscribe,{news},0');
const REFUSED = new Error('connect ECONNREFUSED 127.0.0.1:7000');

function setup(): { fake: FakeCluster; refresh: SlotRefresh; own: FakeCluster['refreshSlotsCache'] } {
  const fake = new FakeCluster();
  const own = fake.refreshSlotsCache;
  const refresh = new SlotRefresh(fake as unknown as Cluster, new ReconnectBound({ baseMs: 100, maxMs: 1000 }));
  return { fake, refresh, own };
}

describe('SlotRefresh', () => {
  test('a refresh runs at once while nothing failed; after failures they are spaced and merged', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { fake, refresh } = setup();
    t.after(() => refresh.uninstall());
    fake.refreshSlotsCache();
    assert.equal(fake.refreshes, 1);
    fake.emit('error', REFUSED); // a sharded subscriber failed to connect
    const called: (Error | null | undefined)[] = [];
    for (let i = 0; i < 50; i++) fake.refreshSlotsCache((err) => called.push(err)); // ioredis's tight loop
    assert.equal(fake.refreshes, 1, 'held back by the bound');
    t.mock.timers.tick(99);
    assert.equal(fake.refreshes, 1);
    t.mock.timers.tick(1);
    assert.equal(fake.refreshes, 2, 'fifty asks, one refresh');
    assert.equal(called.length, 50, 'every caller hears back');
    assert.deepEqual(refresh.counts, { asked: 51, run: 2, subscriptionsLost: 0 });
    fake.emit('nodeError', REFUSED);
    fake.emit('nodeError', REFUSED);
    fake.refreshSlotsCache();
    t.mock.timers.tick(399);
    assert.equal(fake.refreshes, 2, 'the gap doubles per failure');
    t.mock.timers.tick(1);
    assert.equal(fake.refreshes, 3);
  });

  test('subscribers ready with no failure since the last refresh resets the bound', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { fake, refresh } = setup();
    t.after(() => refresh.uninstall());
    fake.emit('error', REFUSED);
    fake.emit('subscribersReady'); // from a reset that still saw the failure: no reset
    fake.refreshSlotsCache();
    assert.equal(fake.refreshes, 0);
    t.mock.timers.tick(100);
    assert.equal(fake.refreshes, 1);
    fake.emit('subscribersReady'); // after this refresh, nothing failed: the master is back
    fake.refreshSlotsCache();
    assert.equal(fake.refreshes, 2, 'at once again');
  });

  test('a pushed sunsubscribe starts the failover schedule; settle() ends it', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { fake, refresh } = setup();
    t.after(() => refresh.uninstall());
    fake.emit('nodeError', SUNSUBSCRIBE);
    assert.equal(refresh.counts.subscriptionsLost, 1);
    t.mock.timers.tick(0);
    assert.equal(fake.refreshes, 1);
    t.mock.timers.tick(FAILOVER_REFRESH[2]!);
    assert.equal(fake.refreshes, 3);
    refresh.settle();
    t.mock.timers.tick(10_000);
    assert.equal(fake.refreshes, 3, 'nothing after settle');
    fake.emit('nodeError', SUNSUBSCRIBE);
    t.mock.timers.tick(10_000);
    assert.equal(fake.refreshes, 3 + FAILOVER_REFRESH.length, 'unsettled, the whole schedule runs');
  });

  test('uninstall() restores refreshSlotsCache, drops its listeners and answers waiting callers', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { fake, refresh, own } = setup();
    fake.emit('error', REFUSED);
    let answered = 0;
    fake.refreshSlotsCache(() => answered++);
    refresh.uninstall();
    refresh.uninstall();
    assert.equal(answered, 1);
    assert.equal(fake.refreshSlotsCache, own);
    assert.equal(fake.listenerCount('nodeError') + fake.listenerCount('error') + fake.listenerCount('subscribersReady'), 0);
    t.mock.timers.tick(10_000);
    assert.equal(fake.refreshes, 0, 'the held refresh never runs');
    fake.refreshSlotsCache();
    assert.equal(fake.refreshes, 1);
  });
});

// Fault 1: steady load through 3 gateways while Redis is killed and restarted 5 times.
// Publishes during an outage are refused (not sent) and counted; messages Redis drops between
// gateways while a subscriber is down are counted as bus gaps; nothing is unaccounted.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useFixture } from '../helpers/fixture.js';
import { CHANNELS, cluster, flowing, flush, ledger, refusing, settle, warmUp } from './world.js';

describe('fault: Redis restarts 5 times under load', { timeout: 120_000 }, () => {
  const fx = useFixture();

  test('every accepted publish is delivered or counted; readyz follows Redis', async (t) => {
    const redis = fx.controllableRedis(t, 'restart');
    if (redis === null) return;
    const members = await cluster(t, fx, ['g1', 'g2', 'g3'], { env: { BUS_PROBE_INTERVAL_MS: '500' } });
    await warmUp(members);
    for (const m of members) m.publisher.start(CHANNELS, 5);

    for (let restart = 0; restart < 5; restart++) {
      await flowing(members, 300);
      await redis.stop();
      await Promise.all(members.map((m) => m.gateway.waitReady(503, 10_000)));
      await refusing(members, 10);
      await redis.start();
      await Promise.all(members.map((m) => m.gateway.waitReady(200, 15_000)));
    }
    await flowing(members, 300);
    await settle(members);
    await flush(members, members);

    const result = await ledger(t, 'fault 1 (Redis restarted 5 times)', members, members);
    assert.deepEqual(result.problems, []);
    for (const [name, f] of Object.entries(result.perGateway)) {
      assert.equal(f.unaccounted, 0, `${name}: every accepted publish delivered, dropped or counted as a gap`);
      assert.equal(f.duplicates, 0, `${name}: no duplicates`);
    }
    assert.ok(result.total.rejected > 0, 'publishes during the outages were refused');
    for (const m of members) {
      assert.ok((await m.gateway.metric('hubcast_bus_reconnects_total{connection="subscriber"}')) >= 5);
    }
  });
});

// Fault 2: Redis frozen with SIGSTOP for 10 s under load, then SIGCONT. The health PING and the
// probe turn every gateway not ready; publishes are refused once that is seen, and those sent
// just before are answered "may still be delivered" (Redis reads them on thaw). Nothing is
// unaccounted.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { useFixture } from '../helpers/fixture.js';
import { CHANNELS, cluster, flowing, flush, ledger, refusing, settle, warmUp } from './world.js';

const FREEZE_MS = 10_000;

describe('fault: Redis frozen for 10 s under load', { timeout: 120_000 }, () => {
  const fx = useFixture();

  test('readyz 503 while frozen, probe failures counted, every accepted publish delivered or counted', async (t) => {
    const redis = fx.controllableRedis(t, 'freeze');
    if (redis === null) return;
    const env = { REDIS_TIMEOUT_MS: '500', BUS_PROBE_INTERVAL_MS: '300', BUS_PROBE_TIMEOUT_MS: '1000' };
    const members = await cluster(t, fx, ['g1', 'g2', 'g3'], { env });
    await warmUp(members);
    for (const m of members) m.publisher.start(CHANNELS, 5);
    await flowing(members, 300);

    const frozenAt = Date.now();
    redis.freeze();
    t.after(() => redis.thaw());
    try {
      await Promise.all(members.map((m) => m.gateway.waitReady(503, 5000)));
      await refusing(members, 10);
      // The fault lasts its full length; the gateways are only watched meanwhile.
      await sleep(Math.max(0, FREEZE_MS - (Date.now() - frozenAt)));
      for (const m of members) {
        const metrics = await m.gateway.metrics();
        assert.equal(metrics.get('hubcast_bus_probe_ok'), 0, `${m.name}: probe not ok while frozen`);
        assert.ok(metrics.get('hubcast_bus_probe_failures_total')! >= 1, `${m.name}: late probes counted`);
        assert.equal(await m.gateway.readyz(), 503, `${m.name}: still not ready at the end of the freeze`);
      }
    } finally {
      redis.thaw();
    }
    await Promise.all(members.map((m) => m.gateway.waitReady(200, 15_000)));
    await flowing(members, 300);
    await settle(members);
    await flush(members, members);

    const result = await ledger(t, 'fault 2 (Redis frozen 10 s)', members, members);
    assert.deepEqual(result.problems, []);
    for (const [name, f] of Object.entries(result.perGateway)) {
      assert.equal(f.unaccounted, 0, `${name}: every accepted publish delivered, dropped or counted as a gap`);
      assert.equal(f.duplicates, 0, `${name}: no duplicates`);
    }
    assert.ok(result.total.rejected > 0, 'publishes during the freeze were refused');
  });
});

// Fault 3: under load through 4 gateways, one is SIGKILLed and another SIGTERMed mid-stream.
// The survivors' clients receive every accepted publish, from every gateway, the dead ones
// included: nothing dropped, no gap, nothing unaccounted.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useFixture } from '../helpers/fixture.js';
import { within } from '../helpers/wait.js';
import { CHANNELS, cluster, flowing, flush, ledger, settle, warmUp } from './world.js';

describe('fault: gateways killed and terminated under load', { timeout: 120_000 }, () => {
  const fx = useFixture();

  test('the survivors lose nothing', async (t) => {
    const members = await cluster(t, fx, ['killed', 'terminated', 'survivor1', 'survivor2'], {
      env: { DRAIN_MS: '1000' },
    });
    const [killed, terminated, ...survivors] = members as [(typeof members)[0], (typeof members)[0], ...typeof members];
    await warmUp(members);
    for (const m of members) m.publisher.start(CHANNELS, 5);
    await flowing(members, 300);

    assert.equal(await killed.gateway.kill('SIGKILL'), 'SIGKILL');
    for (const c of killed.subscribers) assert.equal((await within(c.closed, 5000, 'the killed gateway clients')).code, 1006);
    await flowing([terminated, ...survivors], 300);

    terminated.gateway.proc.kill('SIGTERM');
    // It keeps serving (and publishing) through DRAIN_MS, then closes its clients with 1001.
    for (const c of terminated.subscribers) {
      assert.equal((await within(c.closed, 10_000, 'the terminated gateway clients')).code, 1001);
    }
    assert.equal(await within(terminated.gateway.exited, 15_000, 'the terminated gateway to exit'), 0);
    await flowing(survivors, 300);
    await settle(members);
    await flush(survivors, survivors);

    const result = await ledger(t, 'fault 3 (one gateway SIGKILLed, one SIGTERMed)', members, survivors);
    assert.deepEqual(result.problems, []);
    assert.ok(killed.publisher.count('accepted') > 0 && terminated.publisher.count('accepted') > 0);
    for (const [name, f] of Object.entries(result.perGateway)) {
      assert.equal(f.delivered, f.expected, `${name}: every accepted publish delivered to every client`);
      assert.equal(f.dropped, 0, `${name}: nothing dropped`);
      assert.equal(f.gaps, 0, `${name}: no gap`);
      assert.equal(f.unaccounted, 0, `${name}: nothing unaccounted`);
    }
  });
});

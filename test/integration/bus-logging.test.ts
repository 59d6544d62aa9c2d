// What an operator reads on a gateway's stdout while its Redis fails: the first failure of each
// connection at warn with the address (never the password) and the cause, then quiet while the
// outage lasts (at most one line per 30 s), and one info line when it is back.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useFixture } from '../helpers/fixture.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';
import { freePort, waitUntil } from '../helpers/wait.js';

const WARN = 40;
const INFO = 30;
const ROLES = ['publisher', 'subscriber'];

/** The bus's log lines about its connections' outages. */
const outageLines = (gateway: GatewayProcess): Record<string, unknown>[] =>
  gateway.logs.filter((l) => l.component === 'bus' && typeof l.msg === 'string' && /^redis (unreachable|connection lost|still unreachable|connection restored)/.test(l.msg));

/** Waits until each connection has made at least n more reconnection attempts than before. */
async function attempts(gateway: GatewayProcess, n: number, since: Record<string, number> = {}): Promise<Record<string, number>> {
  const now: Record<string, number> = {};
  await waitUntil(
    async () => {
      const m = await gateway.metrics();
      for (const role of ROLES) now[role] = m.get(`hubcast_bus_reconnects_total{connection="${role}"}`) ?? 0;
      return ROLES.every((role) => now[role]! >= (since[role] ?? 0) + n);
    },
    { timeoutMs: 20_000, what: `${n} reconnection attempts per connection` },
  );
  return now;
}

describe('bus logging', { timeout: 60_000 }, () => {
  const fx = useFixture();

  test('REDIS_URL at a closed port: one warn line per connection naming the address and the cause, then quiet', async (t) => {
    const port = await freePort();
    const gateway = await startGateway({ REDIS_URL: `redis://:s3cret@127.0.0.1:${port}`, REDIS_PREFIX: uniquePrefix() });
    t.after(() => gateway.kill());
    const first = (): Record<string, unknown>[] => outageLines(gateway).filter((l) => l.msg === 'redis unreachable');
    await waitUntil(() => first().length === 2, { timeoutMs: 2000, what: 'a warn line for each connection' });
    for (const line of first()) {
      assert.equal(line.level, WARN);
      assert.equal(line.address, `127.0.0.1:${port}`);
      assert.match(String(line.err), /ECONNREFUSED/);
    }
    assert.deepEqual(first().map((l) => l.role).sort(), ROLES);
    // Six more failed attempts each (over about 3 s): still those two lines, nothing per attempt.
    await attempts(gateway, 6);
    const warnings = gateway.logs.filter((l) => Number(l.level) >= WARN);
    assert.deepEqual(warnings, first(), 'no other warning, and none per attempt');
    assert.ok(gateway.logs.length < 20, `a handful of lines, not one per attempt (${gateway.logs.length})`);
    assert.ok(!gateway.logs.some((l) => JSON.stringify(l).includes('s3cret')), 'the password is never logged');
    assert.equal(await gateway.readyz(), 503);
  });

  test('an outage of a Redis that was up: lost once per connection, then restored with how long it was down', async (t) => {
    const redis = fx.controllableRedis(t, 'stop');
    if (redis === null) return;
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix() });
    assert.deepEqual(outageLines(gateway), [], 'a first connect is no recovery');
    await redis.stop();
    let restarted = false;
    t.after(async () => {
      if (!restarted) await redis.start();
    });
    await waitUntil(() => outageLines(gateway).length === 2, { what: 'a line for each connection lost' });
    const lost = outageLines(gateway);
    assert.ok(lost.every((l) => l.msg === 'redis connection lost' && l.level === WARN && l.address === new URL(redis.url).host));
    assert.deepEqual(lost.map((l) => l.role).sort(), ROLES);
    await attempts(gateway, 5);
    assert.equal(outageLines(gateway).length, 2, 'quiet while it lasts');
    await redis.start();
    restarted = true;
    await gateway.waitReady(200, 15_000);
    await waitUntil(() => outageLines(gateway).length === 4, { what: 'a line for each connection restored' });
    const restored = outageLines(gateway).slice(2);
    for (const line of restored) {
      assert.deepEqual([line.msg, line.level], ['redis connection restored', INFO]);
      assert.ok(Number(line.downMs) > 0, 'how long it was down');
      assert.ok(Number(line.failedAttempts) >= 5, 'how many attempts failed');
    }
    assert.deepEqual(restored.map((l) => l.role).sort(), ROLES);
  });
});

// Redis goes away mid-run: /readyz turns 503, publishes are refused at once (and counted),
// and once Redis is back every channel is resubscribed and delivery resumes, with no restart.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil, within } from '../helpers/wait.js';

describe('Redis restart', { timeout: 60_000 }, () => {
  const fx = useFixture();

  test('readyz goes 503 then 200, publishes fail fast while down, delivery resumes', async (t) => {
    const redis = fx.controllableRedis(t, 'restart');
    if (redis === null) return;
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all([fx.gateway({ REDIS_PREFIX: prefix }), fx.gateway({ REDIS_PREFIX: prefix })]);
    const subA = await fx.connect(a.ws(['alpha', 'beta']));
    const subB = await fx.connect(b.ws(['alpha']));
    const publisher = await fx.connect(b.ws());
    await publisher.request({ op: 'publish', channel: 'alpha', data: 'before' });
    await subA.waitFor((f) => f.data === 'before');
    await subB.waitFor((f) => f.data === 'before');

    await redis.stop();
    await Promise.all([a.waitReady(503), b.waitReady(503)]);

    // While down: rejected at once over WebSocket and HTTP, never queued.
    const started = Date.now();
    const reply = await publisher.request({ op: 'publish', channel: 'alpha', data: 'lost' }, 2000);
    assert.equal(reply.op, 'error');
    assert.equal(reply.code, 'bus_unavailable');
    const res = await fetch(`${a.http}/publish`, { method: 'POST', body: JSON.stringify({ channel: 'alpha', data: 'lost' }) });
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { code: string }).code, 'bus_unavailable');
    assert.ok(Date.now() - started < 2000, 'rejections are immediate');
    assert.equal(await b.metric('hubcast_publishes_rejected_total{source="ws",reason="bus_unavailable"}'), 1);
    assert.equal(await a.metric('hubcast_publishes_rejected_total{source="http",reason="bus_unavailable"}'), 1);
    assert.equal(await a.metric('hubcast_bus_connected{connection="subscriber"}'), 0);
    // Commands awaiting the bus are capped per connection: an acked subscribe flood while Redis
    // is down gets too_many_pending past 1024 instead of piling up.
    const flooder = await fx.connect(a.ws());
    for (let i = 0; i < 1100; i++) flooder.send({ op: 'subscribe', channel: 'gamma', id: i });
    await flooder.waitForCount(() => flooder.frames.length, 76, 5000, '76 refusals');
    assert.ok(flooder.frames.every((f) => f.op === 'error' && f.code === 'too_many_pending' && Number(f.id) >= 1024));
    // The WebSocket clients themselves stay connected through the outage.
    assert.equal(await a.metric('hubcast_connections_open'), 2);

    await redis.start();
    await Promise.all([a.waitReady(200, 15_000), b.waitReady(200, 15_000)]);
    assert.ok((await a.metric('hubcast_bus_reconnects_total{connection="subscriber"}')) >= 1);
    assert.equal(await a.metric('hubcast_bus_connected{connection="subscriber"}'), 1);

    // Subscriptions made before the outage are live again on both gateways, on every channel.
    await publisher.request({ op: 'publish', channel: 'alpha', data: 'after' });
    await publisher.request({ op: 'publish', channel: 'beta', data: 'after-beta' });
    await subA.waitFor((f) => f.data === 'after');
    await subA.waitFor((f) => f.data === 'after-beta');
    await subB.waitFor((f) => f.data === 'after');
    // The 1024 pending subscribes are acked once the channel is live again.
    await flooder.waitForCount(() => flooder.frames.filter((f) => f.op === 'ack').length, 1024, 5000, '1024 acks');
    const pubsub = redis.client();
    // With history on (the default) a channel's pub/sub name carries its hash tag.
    const [alpha, beta] = [`${prefix}{alpha}`, `${prefix}{beta}`];
    const numsub = (await pubsub.pubsub('NUMSUB', alpha, beta)) as (string | number)[];
    assert.deepEqual(numsub.map(String), [alpha, '2', beta, '1']);
    for (const s of [subA, subB]) {
      assert.ok(!s.frames.some((f) => f.data === 'lost'), 'a rejected publish is never delivered');
    }
  });

  test('a frozen Redis (sockets open, nothing answered): readyz 503, publishes refused, recovery on thaw', async (t) => {
    const redis = fx.controllableRedis(t, 'freeze');
    if (redis === null) return;
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all([
      fx.gateway({ REDIS_PREFIX: prefix, REDIS_TIMEOUT_MS: '300' }),
      fx.gateway({ REDIS_PREFIX: prefix, REDIS_TIMEOUT_MS: '300' }),
    ]);
    const sub = await fx.connect(a.ws(['ice']));
    const publisher = await fx.connect(b.ws());

    redis.freeze();
    try {
      // A PING every second, failing after 300 ms: not ready within about 1.3 s.
      await Promise.all([a.waitReady(503, 5000), b.waitReady(503, 5000)]);
      const started = Date.now();
      const reply = await publisher.request({ op: 'publish', channel: 'ice', data: 'frozen' }, 2000);
      assert.deepEqual([reply.op, reply.code], ['error', 'bus_unavailable']);
      assert.ok(Date.now() - started < 250, 'refused at once, not after a timeout');
    } finally {
      redis.thaw();
    }
    await Promise.all([a.waitReady(200, 10_000), b.waitReady(200, 10_000)]);
    await publisher.request({ op: 'publish', channel: 'ice', data: 'thawed' });
    await sub.waitFor((f) => f.data === 'thawed');
    assert.ok(!sub.frames.some((f) => f.data === 'frozen'));
  });

  test('SIGTERM refuses an upgrade still waiting for its channels and exits 0', async (t) => {
    const redis = fx.controllableRedis(t, 'freeze');
    if (redis === null) return;
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), DRAIN_MS: '200', CLOSE_TIMEOUT_MS: '500' });
    redis.freeze();
    try {
      // Frozen but not yet detected: the upgrade waits for SUBSCRIBE (pinning its channel).
      const upgrade = TestClient.connect(gateway.ws(['waiting']), 15_000);
      upgrade.catch(() => undefined);
      await waitUntil(async () => (await gateway.metric('hubcast_channels')) === 1, { what: 'the upgrade to wait' });
      const signalled = Date.now();
      gateway.proc.kill('SIGTERM');
      await assert.rejects(upgrade, /HTTP 503/);
      assert.ok(Date.now() - signalled < 1500, 'refused when the drain starts, not after the 5 s wait');
      assert.equal(await within(gateway.exited, 10_000, 'the gateway to exit'), 0);
    } finally {
      redis.thaw();
    }
  });
});

// Each per-gateway and per-client limit through a real gateway process: MAX_CONNECTIONS (503),
// the inbound rate limit (rate_limited, then 1008), the handshake timeout against slowloris, and
// bounded permessage-deflate (off by default; on, the inflated size is what MAX_MESSAGE_BYTES bounds).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tcpConnect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { TestClient, upgradeRefusal } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil, within } from '../helpers/wait.js';

async function rawSocket(port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.resume();
  await once(socket, 'connect');
  return socket;
}

describe('limits', { timeout: 90_000 }, () => {
  const fx = useFixture();

  test('MAX_CONNECTIONS: the next upgrade gets 503 too_many_connections; a freed slot is reusable', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), MAX_CONNECTIONS: '3' });
    const clients = [await fx.connect(gateway.ws()), await fx.connect(gateway.ws()), await fx.connect(gateway.ws(['a']))];
    const refusal = await upgradeRefusal(gateway.ws());
    assert.deepEqual([refusal.status, refusal.code], [503, 'too_many_connections']);
    assert.equal(await gateway.metric('hubcast_upgrades_rejected_total{reason="too_many_connections"}'), 1);
    // Plain HTTP is not a connection slot: health and metrics still answer.
    assert.equal((await fetch(`${gateway.http}/healthz`)).status, 200);
    clients[0]!.ws.close();
    await clients[0]!.closed;
    await waitUntil(async () => (await gateway.metric('hubcast_connections_open')) === 2, { what: 'the slot to free' });
    await fx.connect(gateway.ws());
  });

  test('rate limit: over the bucket gets one rate_limited frame and stays; sustained abuse closes with 1008', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), RATE_LIMIT_PER_SEC: '10', RATE_LIMIT_BURST: '20' });
    const client = await fx.connect(gateway.ws());
    // 25 acked publishes at once: about 20 fit the bucket (a token may refill meanwhile).
    for (let id = 1; id <= 25; id++) client.send({ op: 'publish', channel: 'r', data: id, id });
    await client.waitFor((f) => f.code === 'rate_limited', 5000, 'the rate_limited frame');
    await client.waitForCount(() => client.frames.filter((f) => f.op === 'ack').length, 20, 5000, '20 acks');
    const acks = client.frames.filter((f) => f.op === 'ack').length;
    assert.ok(acks >= 20 && acks <= 22, `acks ${acks}`);
    assert.equal(client.frames.filter((f) => f.code === 'rate_limited').length, 1, 'one report per run of refusals');
    const refused = await gateway.metric('hubcast_rate_limited_total');
    assert.equal(refused, 25 - acks);
    // Tokens refill: after a pause the same connection is served again.
    await waitUntil(async () => (await client.request({ op: 'publish', channel: 'r', data: 'again' })).op === 'ack', {
      timeoutMs: 5000,
      intervalMs: 300,
      what: 'the bucket to refill',
    });
    assert.equal(client.ws.readyState, client.ws.OPEN);

    // Sustained: far more than RATE_LIMIT_BURST refused within one second.
    const abuser = await fx.connect(gateway.ws());
    for (let i = 0; i < 200; i++) abuser.send({ op: 'publish', channel: 'r', data: i });
    assert.deepEqual(await abuser.closed, { code: 1008, reason: 'rate limit exceeded' });
    assert.equal(await gateway.metric('hubcast_clients_closed_total{reason="rate_limited"}'), 1);
    assert.equal(client.ws.readyState, client.ws.OPEN, 'the well-behaved client stays');

    // Unsolicited pongs are frames too: a pong flood meets the same limit.
    const ponger = await fx.connect(gateway.ws());
    for (let i = 0; i < 200; i++) ponger.ws.pong();
    assert.deepEqual(await ponger.closed, { code: 1008, reason: 'rate limit exceeded' });
    assert.equal(await gateway.metric('hubcast_clients_closed_total{reason="rate_limited"}'), 2);
  });

  test('handshake timeout: headers that never finish, and silent sockets, are cut off', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), HANDSHAKE_TIMEOUT_MS: '500' });
    const partial = await rawSocket(gateway.port);
    partial.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
    const silent = await rawSocket(gateway.port);
    await within(Promise.all([once(partial, 'close'), once(silent, 'close')]), 8000, 'the slow sockets to be closed');
    // A well-behaved client is unaffected.
    const client = await fx.connect(gateway.ws(['ok']));
    assert.equal((await client.request({ op: 'publish', channel: 'ok', data: 1 })).op, 'ack');
  });

  test('handshake timeout: an upgrade stuck waiting for its channels is cut off and counted', async (t) => {
    const redis = fx.controllableRedis(t, 'freeze');
    if (redis === null) return;
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), HANDSHAKE_TIMEOUT_MS: '500', REDIS_TIMEOUT_MS: '10000' });
    redis.freeze();
    t.after(() => redis.thaw());
    // The SUBSCRIBE for a new channel gets no answer from the frozen Redis, so the 101 waits.
    const stuck = TestClient.connect(gateway.ws(['frozen-channel']), 8000);
    await assert.rejects(stuck, /socket hang up|ECONNRESET|closed|Unexpected server response/i);
    assert.equal(await gateway.metric('hubcast_upgrades_rejected_total{reason="handshake_timeout"}'), 1);
    redis.thaw();
  });

  test('permessage-deflate is off by default', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix() });
    const client = await fx.connect(gateway.ws(), { perMessageDeflate: true });
    assert.equal(client.ws.extensions, '');
  });

  test('PERMESSAGE_DEFLATE=true: compressed frames work, and a compressed bomb closes with 1009', async () => {
    const gateway = await fx.gateway({
      REDIS_PREFIX: uniquePrefix(),
      PERMESSAGE_DEFLATE: 'true',
      MAX_MESSAGE_BYTES: '4096',
      QUEUE_MAX_BYTES: '65536',
    });
    const watcher = await fx.connect(gateway.ws(['z']));
    const client = await fx.connect(gateway.ws(['z']), { perMessageDeflate: { threshold: 0 } });
    assert.match(client.ws.extensions, /permessage-deflate/);
    const fits = 'a'.repeat(3000);
    assert.equal((await client.request({ op: 'publish', channel: 'z', data: fits })).op, 'ack');
    await watcher.waitFor((f) => f.data === fits);
    // About 1 KiB on the wire, 1 MiB once inflated.
    client.send({ op: 'publish', channel: 'z', data: '0'.repeat(1 << 20) });
    assert.equal((await client.closed).code, 1009);
    assert.equal((await watcher.request({ op: 'publish', channel: 'z', data: 'still here' })).op, 'ack');
  });
});

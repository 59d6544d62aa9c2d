// POST /publish: each status code, and never a 202 for a message that was not sent.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { isValidEpoch } from '../../services/gateway/src/bus/position.js';
import type { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';

describe('POST /publish', { timeout: 60_000 }, () => {
  const fx = useFixture();
  let gateway: GatewayProcess;
  let subscriber: TestClient;

  const post = (body: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${gateway.http}/publish`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

  before(async () => {
    gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), MAX_MESSAGE_BYTES: '1024', QUEUE_MAX_BYTES: '65536' });
    subscriber = await fx.connect(gateway.ws(['news']));
  });

  test('202 once Redis has taken the message, and it is delivered', async () => {
    const res = await post(JSON.stringify({ channel: 'news', data: { headline: 'hi' } }));
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { status: 'accepted' });
    const frame = await subscriber.waitFor((f) => f.op === 'message');
    // The first message on a fresh prefix's channel: offset 1, in the epoch history gave it.
    assert.deepEqual(frame, { op: 'message', channel: 'news', data: { headline: 'hi' }, offset: 1, epoch: frame.epoch });
    assert.ok(isValidEpoch(frame.epoch), `an epoch: ${String(frame.epoch)}`);
  });

  const invalid: [string, string, string][] = [
    ['a body that is not JSON', '{"channel":', 'invalid_json'],
    ['a body that is not an object', '"news"', 'invalid_json'],
    ['an invalid channel', JSON.stringify({ channel: 'bad channel', data: 1 }), 'invalid_channel'],
    ['a missing channel', JSON.stringify({ data: 1 }), 'invalid_channel'],
    ['a missing data field', JSON.stringify({ channel: 'news' }), 'invalid_message'],
  ];
  for (const [name, body, code] of invalid) {
    test(`400 ${code} for ${name}`, async () => {
      const res = await post(body);
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { code: string }).code, code);
    });
  }

  test('413 for a body over MAX_MESSAGE_BYTES, declared or streamed', async () => {
    const big = JSON.stringify({ channel: 'news', data: 'x'.repeat(2000) });
    const res = await post(big);
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { code: string }).code, 'message_too_large');
    // Chunked, so the limit is enforced on the bytes read rather than on Content-Length.
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const chunked = await fetch(`${gateway.http}/publish`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
  });

  test('404 and 405 for unknown routes and methods', async () => {
    assert.equal((await fetch(`${gateway.http}/nowhere`)).status, 404);
    const res = await fetch(`${gateway.http}/publish`);
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'POST');
    assert.equal((await fetch(`${gateway.http}/healthz`, { method: 'DELETE' })).status, 405);
  });

  test('503 while the bus is down; nothing rejected is ever delivered', async (t) => {
    const redis = fx.controllableRedis(t, 'stop');
    if (redis === null) return;
    await redis.stop();
    await gateway.waitReady(503);
    const res = await post(JSON.stringify({ channel: 'news', data: 'never' }));
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { code: string }).code, 'bus_unavailable');
    await redis.start();
    await gateway.waitReady(200, 15_000);
    assert.equal((await post(JSON.stringify({ channel: 'news', data: 'again' }))).status, 202);
    await subscriber.waitFor((f) => f.data === 'again');
    assert.ok(!subscriber.frames.some((f) => f.data === 'never'));

    const m = await gateway.metrics();
    assert.equal(m.get('hubcast_publishes_accepted_total{source="http"}'), 2);
    assert.equal(m.get('hubcast_publishes_rejected_total{source="http",reason="bus_unavailable"}'), 1);
    assert.equal(m.get('hubcast_publishes_rejected_total{source="http",reason="invalid"}'), invalid.length);
    assert.equal(m.get('hubcast_publishes_rejected_total{source="http",reason="too_large"}'), 2);
  });
});

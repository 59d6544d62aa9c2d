// Token auth through a real gateway process: 401 before the upgrade, 403 for other origins and
// out-of-scope ?channels, `forbidden` frames inside the connection, 4001 when the token expires,
// and POST /publish with a token or the API key.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { upgradeRefusal } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';
import { TEST_SECRET, hs256, nowSec } from '../helpers/tokens.js';

const API_KEY = 'backend-api-key-0123456789-abcdefghij';
const ORIGIN = 'https://app.example';

describe('auth', { timeout: 60_000 }, () => {
  const fx = useFixture();
  let gateway: GatewayProcess;
  const url = (query = ''): string => `ws://127.0.0.1:${gateway.port}/ws${query}`;
  const withToken = (token: string, channels?: string): string =>
    url(`?token=${token}${channels === undefined ? '' : `&channels=${channels}`}`);
  const reader = (): Promise<string> => hs256({ sub: 'reader', subscribe: ['news', 'user.7.*'] });
  const writer = (): Promise<string> => hs256({ sub: 'writer', subscribe: ['chat'], publish: ['chat', 'news'] });

  before(async () => {
    gateway = await fx.gateway({
      REDIS_PREFIX: uniquePrefix(),
      AUTH_JWT_SECRET: TEST_SECRET,
      PUBLISH_API_KEY: API_KEY,
      ALLOWED_ORIGINS: `${ORIGIN},http://localhost:3000`,
    });
  });

  test('no token, a bad token, an expired token, a none token: 401 before the upgrade', async () => {
    const expired = await hs256({ subscribe: ['news'], exp: nowSec() - 60 });
    const forged = await hs256({ subscribe: ['news'] }, 'a-different-secret-of-at-least-32-chars');
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ subscribe: ['*'], exp: nowSec() + 600 })).toString('base64url')}.`;
    for (const target of [url(), withToken('garbage'), withToken(expired), withToken(forged), withToken(none)]) {
      const refusal = await upgradeRefusal(target);
      assert.deepEqual([refusal.status, refusal.code], [401, 'unauthorized'], target);
      assert.equal(refusal.headers['www-authenticate'], 'Bearer');
    }
    assert.equal(await gateway.metric('hubcast_upgrades_rejected_total{reason="unauthorized"}'), 5);
    assert.equal(await gateway.metric('hubcast_connections_opened_total'), 0);
  });

  test('a valid token opens, from ?token= or an Authorization header', async () => {
    const token = await reader();
    const a = await fx.connect(withToken(token, 'news'));
    assert.equal((await a.request({ op: 'subscribe', channel: 'user.7.inbox' })).op, 'ack');
    const b = await fx.connect(url('?channels=news'), { headers: { authorization: `Bearer ${token}` } });
    assert.equal(b.ws.readyState, b.ws.OPEN);
    // An empty ?token= does not hide the header.
    const c = await fx.connect(url('?token=&channels=news'), { headers: { authorization: `Bearer ${token}` } });
    assert.equal(c.ws.readyState, c.ws.OPEN);
  });

  test('?channels outside the subscribe patterns: 403 forbidden', async () => {
    const refusal = await upgradeRefusal(withToken(await reader(), 'news,secret'));
    assert.deepEqual([refusal.status, refusal.code], [403, 'forbidden']);
  });

  test('subscribe and publish outside the patterns get forbidden; the connection stays and works', async () => {
    const client = await fx.connect(withToken(await writer(), 'chat'));
    const sub = await client.request({ op: 'subscribe', channel: 'news' });
    assert.deepEqual([sub.op, sub.code], ['error', 'forbidden']);
    const pub = await client.request({ op: 'publish', channel: 'secret', data: 1 });
    assert.deepEqual([pub.op, pub.code], ['error', 'forbidden']);
    assert.equal((await client.request({ op: 'publish', channel: 'chat', data: 'hi' })).op, 'ack');
    await client.waitFor((f) => f.op === 'message' && f.data === 'hi');
    // A reader may not publish at all (no publish claim).
    const readOnly = await fx.connect(withToken(await reader()));
    assert.equal((await readOnly.request({ op: 'publish', channel: 'news', data: 1 })).code, 'forbidden');
    assert.equal(await gateway.metric('hubcast_publishes_rejected_total{source="ws",reason="forbidden"}'), 2);
  });

  test('a token that expires while connected closes the connection with 4001', async () => {
    const before = await gateway.metric('hubcast_clients_closed_total{reason="token_expired"}');
    const exp = nowSec() + 4;
    const client = await fx.connect(withToken(await hs256({ subscribe: ['news'], exp }), 'news'));
    // Still open and served well before exp: the timer is not early (seconds read as ms, say).
    assert.equal((await client.request({ op: 'subscribe', channel: 'news' })).op, 'ack');
    const closed = await client.closed;
    const at = Date.now();
    assert.deepEqual(closed, { code: 4001, reason: 'token expired' });
    assert.ok(at >= exp * 1000 - 250, `closed ${exp * 1000 - at} ms before exp`);
    assert.equal(await gateway.metric('hubcast_clients_closed_total{reason="token_expired"}'), before + 1);
  });

  test('ALLOWED_ORIGINS: other origins get 403; listed origins and no Origin pass', async () => {
    const token = await reader();
    const refusal = await upgradeRefusal(withToken(token), { origin: 'https://evil.example' });
    assert.deepEqual([refusal.status, refusal.code], [403, 'forbidden']);
    await fx.connect(withToken(token), { origin: ORIGIN });
    await fx.connect(withToken(token), { origin: 'http://localhost:3000' });
    await fx.connect(withToken(token));
    assert.ok((await gateway.metric('hubcast_upgrades_rejected_total{reason="forbidden"}')) >= 1);
  });

  test('POST /publish: 401 without credentials, 403 out of scope, 202 with a token or the API key', async () => {
    const sub = await fx.connect(withToken(await writer(), 'chat'));
    const post = (channel: string, auth?: string): Promise<Response> =>
      fetch(`${gateway.http}/publish`, {
        method: 'POST',
        body: JSON.stringify({ channel, data: `via-${auth === undefined ? 'none' : auth.slice(0, 6)}` }),
        headers: auth === undefined ? {} : { authorization: `Bearer ${auth}` },
      });
    const none = await post('chat');
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { code: string }).code, 'unauthorized');
    assert.equal((await post('chat', 'wrong-key')).status, 401);
    assert.equal((await post('chat', await hs256({ publish: ['chat'], exp: nowSec() - 5 }))).status, 401);
    const outOfScope = await post('secret', await writer());
    assert.equal(outOfScope.status, 403);
    assert.equal(((await outOfScope.json()) as { code: string }).code, 'forbidden');
    assert.equal((await post('chat', await writer())).status, 202);
    assert.equal((await post('chat', API_KEY)).status, 202);
    await sub.waitForCount(() => sub.messages('chat').length, 2, 10_000, 'both accepted publishes');
    const m = await gateway.metrics();
    assert.equal(m.get('hubcast_publishes_rejected_total{source="http",reason="unauthorized"}'), 3);
    assert.equal(m.get('hubcast_publishes_rejected_total{source="http",reason="forbidden"}'), 1);
    assert.equal(m.get('hubcast_publishes_accepted_total{source="http"}'), 2);
  });
});

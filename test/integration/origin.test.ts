// The origin rule through a real HTTP client against in-process gateways (memory bus): the
// cross-site "simple" publish a page can send without a preflight is refused and never
// delivered; the own origin, no Origin, listed origins and `*` pass; the CORS preflight; the
// upgrade with a foreign Origin is refused by default.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { type Config, loadConfig } from '../../services/gateway/src/config.js';
import { type Gateway, startGateway } from '../../services/gateway/src/gateway.js';
import { TestClient, upgradeRefusal } from '../helpers/client.js';

const FOREIGN = 'https://evil.example';
const LISTED = 'https://app.example';

interface Running {
  readonly gateway: Gateway;
  readonly http: string;
  readonly ws: string;
  /** The gateway's own origin, as a page it served would send it. */
  readonly own: string;
  readonly subscriber: TestClient;
}

/** A gateway on port 0 and a subscriber to `news` (without Origin, as a server would connect). */
async function start(overrides: Partial<Config>, env: Record<string, string> = {}): Promise<Running> {
  const config = { ...loadConfig({ PORT: '0', HOST: '127.0.0.1', DRAIN_MS: '0', ...env }), ...overrides };
  const gateway = await startGateway(config, pino({ level: 'silent' }));
  const http = `http://127.0.0.1:${gateway.port}`;
  const ws = `ws://127.0.0.1:${gateway.port}/ws`;
  let subscriber: TestClient;
  try {
    subscriber = await TestClient.connect(`${ws}?channels=news`);
  } catch (err) {
    await gateway.shutdown();
    throw err;
  }
  return { gateway, http, ws, own: http, subscriber };
}

async function stop(r: Running | undefined): Promise<void> {
  if (r === undefined) return;
  r.subscriber.close();
  await r.gateway.shutdown();
}

/** What a page's fetch(gateway + '/publish', {mode: 'no-cors', body}) sends: text/plain, no preflight. */
function simplePost(r: Running, data: unknown, origin?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'text/plain;charset=UTF-8' };
  if (origin !== undefined) headers.origin = origin;
  return fetch(`${r.http}/publish`, { method: 'POST', mode: 'no-cors', headers, body: JSON.stringify({ channel: 'news', data }) });
}

function preflight(r: Running, origin: string): Promise<Response> {
  return fetch(`${r.http}/publish`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' },
  });
}

/** How many messages the subscriber has had so far; the mark for deliveredSince. */
const mark = (r: Running): number => r.subscriber.messages('news').length;

/**
 * What the subscriber got since the mark, up to a marker published without Origin: the memory bus
 * delivers in order, so anything delivered (or refused and yet delivered) shows up before it.
 */
async function deliveredSince(r: Running, seen: number, marker: string): Promise<unknown[]> {
  assert.equal((await simplePost(r, marker)).status, 202);
  await r.subscriber.waitFor((f) => f.op === 'message' && f.data === marker);
  return r.subscriber.messages('news').slice(seen).map((f) => f.data);
}

describe('origin rule, ALLOWED_ORIGINS unset: same origin only', { timeout: 60_000 }, () => {
  let r: Running | undefined;
  before(async () => {
    r = await start({ allowedOrigins: undefined });
  });
  after(() => stop(r));

  test('a no-cors text/plain POST /publish from a foreign Origin is refused 403 forbidden, counted, and not delivered', async () => {
    const seen = mark(r!);
    const res = await simplePost(r!, 'from-evil', FOREIGN);
    assert.equal(res.status, 403);
    assert.equal(((await res.json()) as { code: string }).code, 'forbidden');
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.deepEqual(await deliveredSince(r!, seen, 'marker-1'), ['marker-1']);
    assert.equal(r!.gateway.stats.publishesRejected.http.forbidden, 1);
  });

  test('the own origin and no Origin publish (202, delivered); no CORS headers needed', async () => {
    const seen = mark(r!);
    const own = await simplePost(r!, 'from-own', r!.own);
    assert.equal(own.status, 202);
    assert.equal(own.headers.get('access-control-allow-origin'), null);
    const none = await simplePost(r!, 'from-server');
    assert.equal(none.status, 202);
    assert.deepEqual(await deliveredSince(r!, seen, 'marker-2'), ['from-own', 'from-server', 'marker-2']);
  });

  test('a preflight from a foreign origin is refused 403', async () => {
    const res = await preflight(r!, FOREIGN);
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
  });

  test('an upgrade with a foreign Origin is refused 403 forbidden (counted); the own origin and no Origin open', async () => {
    const before = r!.gateway.stats.upgradesRejected.forbidden;
    const refusal = await upgradeRefusal(r!.ws, { origin: FOREIGN });
    assert.deepEqual([refusal.status, refusal.code], [403, 'forbidden']);
    assert.equal(r!.gateway.stats.upgradesRejected.forbidden, before + 1);
    (await TestClient.connect(r!.ws, 10_000, { origin: r!.own })).close();
    (await TestClient.connect(r!.ws)).close();
  });
});

describe('origin rule, ALLOWED_ORIGINS listing an origin', { timeout: 60_000 }, () => {
  let r: Running | undefined;
  before(async () => {
    r = await start({}, { ALLOWED_ORIGINS: LISTED });
  });
  after(() => stop(r));

  test('the listed origin publishes; the answer carries Access-Control-Allow-Origin and Vary', async () => {
    const seen = mark(r!);
    const res = await simplePost(r!, 'from-app', LISTED);
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('access-control-allow-origin'), LISTED);
    assert.match(res.headers.get('vary') ?? '', /Origin/);
    assert.deepEqual(await deliveredSince(r!, seen, 'marker'), ['from-app', 'marker']);
  });

  test('refusals to the listed origin carry the CORS headers too, so the page can read them', async () => {
    const res = await fetch(`${r!.http}/publish`, { method: 'POST', headers: { origin: LISTED }, body: '{"channel":' });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('access-control-allow-origin'), LISTED);
  });

  test('a preflight from the listed origin: 204 with what a browser needs to POST JSON with a bearer', async () => {
    const res = await preflight(r!, LISTED);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), LISTED);
    assert.equal(res.headers.get('access-control-allow-methods'), 'POST');
    assert.equal(res.headers.get('access-control-allow-headers'), 'content-type, authorization');
    assert.ok(Number(res.headers.get('access-control-max-age')) > 0);
    assert.match(res.headers.get('vary') ?? '', /Origin/);
    assert.equal((await preflight(r!, FOREIGN)).status, 403);
  });

  test('other origins are still refused, on publish and upgrade; the listed one upgrades', async () => {
    const seen = mark(r!);
    assert.equal((await simplePost(r!, 'from-evil', FOREIGN)).status, 403);
    assert.equal((await upgradeRefusal(r!.ws, { origin: FOREIGN })).status, 403);
    (await TestClient.connect(r!.ws, 10_000, { origin: LISTED })).close();
    assert.deepEqual(await deliveredSince(r!, seen, 'marker-2'), ['marker-2']);
  });
});

describe('origin rule, ALLOWED_ORIGINS=*', { timeout: 60_000 }, () => {
  let r: Running | undefined;
  before(async () => {
    r = await start({}, { ALLOWED_ORIGINS: '*' });
  });
  after(() => stop(r));

  test('every origin publishes, preflights and upgrades', async () => {
    const seen = mark(r!);
    const res = await simplePost(r!, 'from-anywhere', FOREIGN);
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('access-control-allow-origin'), FOREIGN);
    assert.equal((await preflight(r!, FOREIGN)).status, 204);
    (await TestClient.connect(r!.ws, 10_000, { origin: FOREIGN })).close();
    assert.deepEqual(await deliveredSince(r!, seen, 'marker'), ['from-anywhere', 'marker']);
  });
});

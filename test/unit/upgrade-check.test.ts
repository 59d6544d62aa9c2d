// The pure upgrade check: each refusal with its registry entry, in the order the rules apply,
// and what a good request asks for.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AuthResult, ChannelPatterns, type Grant, OPEN_GRANT } from '../../services/gateway/src/auth.js';
import { Refusal } from '../../services/gateway/src/codes.js';
import {
  type Asked,
  type UpgradeRequest,
  type UpgradeRules,
  checkGrant,
  checkRequest,
  isRefused,
} from '../../services/gateway/src/upgrade-check.js';

const RULES: UpgradeRules = { maxConnections: 10, maxChannelsPerClient: 3, allowedOrigins: undefined };
const OPEN = { draining: false, connections: 0 };
const req = (url: string, headers: Record<string, string> = {}): UpgradeRequest => ({ url, headers: { host: 'gw:80', ...headers } });

function asked(result: ReturnType<typeof checkRequest>): Asked {
  assert.ok(!isRefused(result), `refused: ${JSON.stringify(result)}`);
  return result;
}

describe('checkRequest', () => {
  test('a good request: its channels, deduplicated, and its URL', () => {
    const a = asked(checkRequest(req('/ws?channels=a,b,a&token=t'), RULES, OPEN));
    assert.deepEqual(a.channels, ['a', 'b']);
    assert.equal(a.url.searchParams.get('token'), 't');
    assert.deepEqual(asked(checkRequest(req('/ws'), RULES, OPEN)).channels, []);
  });

  const refusals: [string, UpgradeRequest, typeof OPEN, object][] = [
    ['draining', req('/ws'), { draining: true, connections: 0 }, Refusal.Draining],
    ['at MAX_CONNECTIONS (upgrades in progress count)', req('/ws'), { draining: false, connections: 10 }, Refusal.TooManyConnections],
    ['another path', req('/nope'), OPEN, Refusal.NotFound],
    ['a foreign origin, ALLOWED_ORIGINS unset', req('/ws', { origin: 'https://evil.example' }), OPEN, Refusal.OriginForbidden],
    ['an invalid channel', req('/ws?channels=ok,bad%20name'), OPEN, Refusal.InvalidChannel],
    ['more channels than MAX_CHANNELS_PER_CLIENT', req('/ws?channels=a,b,c,d'), OPEN, Refusal.TooManyChannels],
  ];
  for (const [name, request, state, refusal] of refusals) {
    test(`refuses ${name}`, () => {
      const result = checkRequest(request, RULES, state);
      assert.ok(isRefused(result));
      assert.equal(result.refusal, refusal);
    });
  }

  test('draining comes first, then the limit, then the route, the origin and the channels', () => {
    const all = req('/nope?channels=bad%20name', { origin: 'https://evil.example' });
    const full = { draining: false, connections: 99 };
    const order = [
      checkRequest(all, RULES, { draining: true, connections: 99 }),
      checkRequest(all, RULES, full),
      checkRequest(all, RULES, OPEN),
      checkRequest(req('/ws?channels=bad%20name', { origin: 'https://evil.example' }), RULES, OPEN),
      checkRequest(req('/ws?channels=bad%20name'), RULES, OPEN),
    ].map((r) => (isRefused(r) ? r.refusal : null));
    assert.deepEqual(order, [Refusal.Draining, Refusal.TooManyConnections, Refusal.NotFound, Refusal.OriginForbidden, Refusal.InvalidChannel]);
  });

  test('origins: own origin and no Origin pass; a listed one passes; `*` passes all', () => {
    asked(checkRequest(req('/ws', { origin: 'http://gw:80' }), RULES, OPEN));
    asked(checkRequest(req('/ws'), RULES, OPEN));
    const listed = { ...RULES, allowedOrigins: ['https://app.example'] };
    asked(checkRequest(req('/ws', { origin: 'https://app.example' }), listed, OPEN));
    assert.ok(isRefused(checkRequest(req('/ws', { origin: 'https://evil.example' }), listed, OPEN)));
    asked(checkRequest(req('/ws', { origin: 'https://evil.example' }), { ...RULES, allowedOrigins: ['*'] }, OPEN));
  });

  test('details name the input; code, status and reason stay the entry', () => {
    const result = checkRequest(req('/elsewhere'), RULES, OPEN);
    assert.ok(isRefused(result));
    assert.deepEqual([result.refusal.code, result.refusal.status, result.refusal.reason], ['not_found', 404, 'invalid']);
    assert.match(result.detail ?? '', /\/elsewhere/);
  });
});

describe('checkGrant', () => {
  const reader: Grant = { ...OPEN_GRANT, subscribe: ChannelPatterns.parse(['news', 'user.7.*'], 'subscribe') as ChannelPatterns };

  test('a grant covering every channel is the result', () => {
    const a = asked(checkRequest(req('/ws?channels=news,user.7.inbox'), RULES, OPEN));
    assert.equal(checkGrant(a, reader), reader);
  });

  test('an auth failure is 401 with its message; a channel outside the patterns is 403 naming it', () => {
    const a = asked(checkRequest(req('/ws?channels=news,secret'), RULES, OPEN));
    const failure: AuthResult = { failure: 'expired', message: 'token expired' };
    const unauthorized = checkGrant(a, failure);
    assert.ok(isRefused(unauthorized));
    assert.equal(unauthorized.refusal, Refusal.Unauthorized);
    assert.equal(unauthorized.detail, 'token expired');
    const forbidden = checkGrant(a, reader);
    assert.ok(isRefused(forbidden));
    assert.equal(forbidden.refusal, Refusal.SubscribeForbidden);
    assert.match(forbidden.detail ?? '', /secret/);
  });
});

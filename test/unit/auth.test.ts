// The auth module against real keys and real tokens: each key source verifies its own algorithm
// and nothing else; expired, forged, `none`, HS/RS-confused, wrong-audience and malformed tokens
// are refused; channel patterns grant exactly what they say.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { type IncomingMessage, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SignJWT, UnsecuredJWT, exportJWK, type JWTPayload } from 'jose';
import {
  Auth,
  type AuthOptions,
  type AuthResult,
  ChannelPatterns,
  type Grant,
  MAX_PATTERNS,
  isAuthFailure,
} from '../../services/gateway/src/auth.js';

const SECRET = 'test-secret-that-is-long-enough-32+';
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const RSA_PEM = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const EC_PEM = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();

const NONE: AuthOptions = {
  authJwtSecret: undefined,
  authPublicKey: undefined,
  authJwksUrl: undefined,
  authAudience: undefined,
  authIssuer: undefined,
  publishApiKey: undefined,
};

const inAnHour = (): number => Math.floor(Date.now() / 1000) + 3600;
const CLAIMS: JWTPayload = { sub: 'u1', subscribe: ['news', 'user.1.*'], publish: ['chat'] };

async function sign(key: Uint8Array | KeyObject, alg: string, claims: JWTPayload = CLAIMS, header: Record<string, string> = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg, ...header });
  if (claims.exp === undefined) jwt.setExpirationTime(inAnHour());
  return jwt.sign(key);
}
const hs = (claims?: JWTPayload, secret = SECRET): Promise<string> => sign(new TextEncoder().encode(secret), 'HS256', claims);
const rs = (claims?: JWTPayload, header?: Record<string, string>): Promise<string> => sign(rsa.privateKey, 'RS256', claims, header);
const es = (claims?: JWTPayload, header?: Record<string, string>): Promise<string> => sign(ec.privateKey, 'ES256', claims, header);
const none = (claims: JWTPayload = CLAIMS): string => new UnsecuredJWT(claims).setExpirationTime(inAnHour()).encode();
/** The classic confusion attack: an HS256 token whose HMAC secret is the server's public key. */
const confused = (pem: string): Promise<string> => hs(CLAIMS, pem);

function grant(result: AuthResult): Grant {
  assert.ok(!isAuthFailure(result), `expected a grant, got ${JSON.stringify(result)}`);
  return result;
}
function failure(result: AuthResult, kind: 'missing' | 'invalid' | 'expired'): void {
  assert.ok(isAuthFailure(result), 'expected a refusal');
  assert.equal(result.failure, kind, result.message);
}

const req = (headers: Record<string, string> = {}): IncomingMessage => ({ headers }) as unknown as IncomingMessage;

describe('ChannelPatterns', () => {
  test('exact names, prefix*, and * alone', () => {
    const p = ChannelPatterns.parse(['news', 'user.1.*', 'a*'], 'subscribe');
    assert.ok(p instanceof ChannelPatterns);
    for (const yes of ['news', 'user.1.inbox', 'user.1.', 'a', 'abc']) assert.ok(p.allows(yes), yes);
    for (const no of ['news2', 'new', 'user.2.inbox', 'user.1', 'b']) assert.equal(p.allows(no), false, no);
    const all = ChannelPatterns.parse(['*'], 'publish');
    assert.ok(all instanceof ChannelPatterns && all.allows('anything.at:all'));
    const absent = ChannelPatterns.parse(undefined, 'publish');
    assert.ok(absent instanceof ChannelPatterns && !absent.allows('news'));
  });

  test('malformed claims are errors, not grants', () => {
    for (const bad of ['news', { news: true }, [1], ['has space'], ['x*y*'], ['*a'], ['x'.repeat(129)], Array(MAX_PATTERNS + 1).fill('a')]) {
      assert.equal(typeof ChannelPatterns.parse(bad, 'subscribe'), 'string', JSON.stringify(bad).slice(0, 60));
    }
  });
});

describe('Auth: HS256 secret', () => {
  const auth = new Auth({ ...NONE, authJwtSecret: SECRET });

  test('a valid token grants its patterns and carries its expiry', async () => {
    const g = grant(await auth.verify(await hs()));
    assert.equal(g.subject, 'u1');
    assert.ok(g.subscribe.allows('news') && g.subscribe.allows('user.1.x') && !g.subscribe.allows('chat'));
    assert.ok(g.publish.allows('chat') && !g.publish.allows('news'), 'out-of-scope channel is not granted');
    assert.ok(Math.abs(g.expiresAt - inAnHour() * 1000) < 5000);
  });

  test('missing, expired, forged, none, exp-less, too long, garbage: refused', async () => {
    failure(await auth.verify(undefined), 'missing');
    failure(await auth.verify(''), 'missing');
    failure(await auth.verify(await hs({ ...CLAIMS, exp: Math.floor(Date.now() / 1000) - 10 })), 'expired');
    failure(await auth.verify(await hs(CLAIMS, 'another-secret-that-is-long-enough!!')), 'invalid');
    failure(await auth.verify(none()), 'invalid');
    const noExp = await new SignJWT(CLAIMS).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
    failure(await auth.verify(noExp), 'invalid');
    failure(await auth.verify(`${await hs()}${'x'.repeat(9000)}`), 'invalid');
    failure(await auth.verify('not.a.jwt'), 'invalid');
    // A valid signature over the wrong algorithm family: RS256 token to an HS256 gateway.
    failure(await auth.verify(await rs()), 'invalid');
    // Tampered payload, original signature.
    const [h, , s] = (await hs()).split('.');
    const forged = Buffer.from(JSON.stringify({ ...CLAIMS, publish: ['*'], exp: inAnHour() })).toString('base64url');
    failure(await auth.verify(`${h}.${forged}.${s}`), 'invalid');
  });

  test('malformed channel claims make the token invalid', async () => {
    failure(await auth.verify(await hs({ subscribe: 'news' })), 'invalid');
    failure(await auth.verify(await hs({ publish: ['bad channel'] })), 'invalid');
  });

  test('a token from ?token= or Authorization: Bearer', async () => {
    const token = await hs();
    grant(await auth.connect(req(), new URL(`http://x/ws?token=${token}`)));
    grant(await auth.connect(req({ authorization: `Bearer ${token}` }), new URL('http://x/ws')));
    failure(await auth.connect(req({ authorization: `Basic ${token}` }), new URL('http://x/ws')), 'missing');
  });
});

describe('Auth: PEM public key', () => {
  test('RSA pins RS256: HS/RS confusion, none, ES256 and a foreign RSA key are refused', async () => {
    const auth = new Auth({ ...NONE, authPublicKey: RSA_PEM });
    grant(await auth.verify(await rs()));
    failure(await auth.verify(await confused(RSA_PEM)), 'invalid');
    failure(await auth.verify(none()), 'invalid');
    failure(await auth.verify(await es()), 'invalid');
    failure(await auth.verify(await sign(otherRsa.privateKey, 'RS256')), 'invalid');
    failure(await auth.verify(await rs({ ...CLAIMS, exp: Math.floor(Date.now() / 1000) - 10 })), 'expired');
  });

  test('EC P-256 pins ES256', async () => {
    const auth = new Auth({ ...NONE, authPublicKey: EC_PEM });
    grant(await auth.verify(await es()));
    failure(await auth.verify(await confused(EC_PEM)), 'invalid');
    failure(await auth.verify(await rs()), 'invalid');
    failure(await auth.verify(none()), 'invalid');
  });

  test('audience and issuer, when configured, must match', async () => {
    const auth = new Auth({ ...NONE, authPublicKey: RSA_PEM, authAudience: 'hubcast', authIssuer: 'https://id.example' });
    grant(await auth.verify(await rs({ ...CLAIMS, aud: 'hubcast', iss: 'https://id.example' })));
    failure(await auth.verify(await rs({ ...CLAIMS, aud: 'other', iss: 'https://id.example' })), 'invalid');
    failure(await auth.verify(await rs({ ...CLAIMS, iss: 'https://id.example' })), 'invalid');
    failure(await auth.verify(await rs({ ...CLAIMS, aud: 'hubcast', iss: 'https://evil.example' })), 'invalid');
  });
});

describe('Auth: remote JWKS (a real HTTP server)', () => {
  let url = '';
  let fetches = 0;
  const server = createServer((_req, res) => {
    fetches++;
    void Promise.all([exportJWK(rsa.publicKey), exportJWK(ec.publicKey)]).then(([r, e]) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [{ ...r, kid: 'r1', alg: 'RS256', use: 'sig' }, { ...e, kid: 'e1', alg: 'ES256', use: 'sig' }] }));
    });
  });
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('RS256 and ES256 by kid; confusion, none, unknown kid refused; keys cached', async () => {
    const auth = new Auth({ ...NONE, authJwksUrl: url });
    grant(await auth.verify(await rs(CLAIMS, { kid: 'r1' })));
    grant(await auth.verify(await es(CLAIMS, { kid: 'e1' })));
    failure(await auth.verify(await sign(new TextEncoder().encode(RSA_PEM), 'HS256', CLAIMS, { kid: 'r1' })), 'invalid');
    failure(await auth.verify(none()), 'invalid');
    failure(await auth.verify(await sign(otherRsa.privateKey, 'RS256', CLAIMS, { kid: 'r1' })), 'invalid');
    assert.equal(fetches, 1, 'the key set is fetched once and cached');
  });
});

describe('Auth: POST /publish credentials', () => {
  const KEY = 'k'.repeat(40);

  test('no key source and no API key: open', async () => {
    const auth = new Auth(NONE);
    assert.equal(auth.tokensRequired, false);
    assert.ok(grant(await auth.publisher(req())).publish.allows('anything'));
    assert.ok(grant(await auth.connect(req(), new URL('http://x/ws'))).subscribe.allows('anything'));
  });

  test('API key alone: the key publishes anywhere, anything else is refused', async () => {
    const auth = new Auth({ ...NONE, publishApiKey: KEY });
    assert.equal(auth.tokensRequired, false, 'WebSocket connections stay open without a key source');
    const g = grant(await auth.publisher(req({ authorization: `Bearer ${KEY}` })));
    assert.ok(g.publish.allows('any.channel') && !g.subscribe.allows('any.channel'));
    failure(await auth.publisher(req()), 'missing');
    failure(await auth.publisher(req({ authorization: `Bearer ${KEY}x` })), 'invalid');
  });

  test('API key and tokens: either works, a token only for its channels', async () => {
    const auth = new Auth({ ...NONE, authJwtSecret: SECRET, publishApiKey: KEY });
    grant(await auth.publisher(req({ authorization: `Bearer ${KEY}` })));
    const g = grant(await auth.publisher(req({ authorization: `Bearer ${await hs()}` })));
    assert.ok(g.publish.allows('chat') && !g.publish.allows('news'));
    failure(await auth.publisher(req({ authorization: 'Bearer wrong' })), 'invalid');
  });
});

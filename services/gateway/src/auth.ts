// Token auth: verifies JWTs with jose against the one configured key source, with the algorithm
// pinned to that key's type, and turns their channel claims into permission checks.
//
// Claims: `exp` (required), `subscribe` and `publish` (arrays of channel patterns; absent = none).
// A pattern is an exact channel name, or a prefix followed by `*` matching any rest ("news.*",
// "user.42.*"); `*` alone matches every channel.
import { createHash, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, errors, jwtVerify } from 'jose';
import type { Config } from './config.js';
import { isValidChannel } from './protocol.js';

/** Patterns one claim may hold: each check is a scan of the prefixes, so their number is bounded. */
export const MAX_PATTERNS = 256;
/** Longer tokens are refused unread: a header line of 8 KiB already holds any sane token. */
export const MAX_TOKEN_CHARS = 8192;

export class ChannelPatterns {
  /** Every channel (auth off, or the publish API key). */
  static readonly ANY = new ChannelPatterns(new Set(), ['']);
  static readonly NONE = new ChannelPatterns(new Set(), []);

  private constructor(
    private readonly exact: ReadonlySet<string>,
    private readonly prefixes: readonly string[],
  ) {}

  /** Parses a claim: undefined means no channels; anything but an array of valid patterns is an error message. */
  static parse(claim: unknown, name: string): ChannelPatterns | string {
    if (claim === undefined) return ChannelPatterns.NONE;
    if (!Array.isArray(claim)) return `claim ${name} must be an array of channel patterns`;
    if (claim.length > MAX_PATTERNS) return `claim ${name} holds more than ${MAX_PATTERNS} patterns`;
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const pattern of claim) {
      if (typeof pattern !== 'string') return `claim ${name} must hold only strings`;
      const invalid = `claim ${name} has an invalid pattern ${JSON.stringify(pattern.slice(0, 130))}`;
      if (pattern.endsWith('*')) {
        const prefix = pattern.slice(0, -1);
        if (prefix !== '' && !isValidChannel(prefix)) return invalid;
        prefixes.push(prefix);
      } else if (isValidChannel(pattern)) {
        exact.add(pattern);
      } else {
        return invalid;
      }
    }
    return new ChannelPatterns(exact, prefixes);
  }

  allows(channel: string): boolean {
    if (this.exact.has(channel)) return true;
    for (const prefix of this.prefixes) if (channel.startsWith(prefix)) return true;
    return false;
  }
}

/** What a verified token (or the API key, or auth being off) lets its holder do. */
export interface Grant {
  readonly subject: string | undefined;
  /** Expiry in ms since the epoch; Infinity when auth is off or for the API key. */
  readonly expiresAt: number;
  readonly subscribe: ChannelPatterns;
  readonly publish: ChannelPatterns;
}

export const OPEN_GRANT: Grant = Object.freeze({
  subject: undefined,
  expiresAt: Number.POSITIVE_INFINITY,
  subscribe: ChannelPatterns.ANY,
  publish: ChannelPatterns.ANY,
});

const API_KEY_GRANT: Grant = Object.freeze({
  subject: 'publish-api-key',
  expiresAt: Number.POSITIVE_INFINITY,
  subscribe: ChannelPatterns.NONE,
  publish: ChannelPatterns.ANY,
});

export interface AuthFailure {
  /** missing: no credentials; invalid: bad signature, algorithm, claims; expired: past exp. */
  readonly failure: 'missing' | 'invalid' | 'expired';
  readonly message: string;
}

export type AuthResult = Grant | AuthFailure;

export function isAuthFailure(result: AuthResult): result is AuthFailure {
  return 'failure' in result;
}

export type AuthOptions = Pick<Config, 'authJwtSecret' | 'authPublicKey' | 'authJwksUrl' | 'authAudience' | 'authIssuer' | 'publishApiKey'>;

/** GET /history with the API key: every channel may be read. */
const HISTORY_KEY_GRANT: Grant = Object.freeze({ ...API_KEY_GRANT, subscribe: ChannelPatterns.ANY });

type Key = Uint8Array | KeyObject | JWTVerifyGetKey;

/** The key and the only algorithms it may verify: never `none`, never HS with an asymmetric key. */
function keySource(options: AuthOptions): { key: Key; algorithms: string[] } | null {
  if (options.authJwtSecret !== undefined) {
    return { key: new TextEncoder().encode(options.authJwtSecret), algorithms: ['HS256'] };
  }
  if (options.authPublicKey !== undefined) {
    const key = createPublicKey(options.authPublicKey);
    return { key, algorithms: key.asymmetricKeyType === 'rsa' ? ['RS256'] : ['ES256'] };
  }
  if (options.authJwksUrl !== undefined) {
    // jose picks the key by kid and refuses one whose type does not match the token's alg.
    const jwks = createRemoteJWKSet(new URL(options.authJwksUrl), {
      timeoutDuration: 5000,
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
    });
    return { key: jwks, algorithms: ['RS256', 'ES256'] };
  }
  return null;
}

export class Auth {
  private readonly source: { key: Key; algorithms: string[] } | null;
  private readonly apiKeyDigest: Buffer | null;

  constructor(private readonly options: AuthOptions) {
    this.source = keySource(options);
    this.apiKeyDigest = options.publishApiKey === undefined ? null : digest(options.publishApiKey);
  }

  /** True when a WebSocket connection needs a token. */
  get tokensRequired(): boolean {
    return this.source !== null;
  }

  /** Verifies a token; without a configured key source every token (or none) gets the open grant. */
  async verify(token: string | undefined): Promise<AuthResult> {
    const source = this.source;
    if (source === null) return OPEN_GRANT;
    if (token === undefined || token === '') return { failure: 'missing', message: 'a token is required' };
    if (token.length > MAX_TOKEN_CHARS) return { failure: 'invalid', message: 'token too long' };
    let payload: JWTPayload;
    try {
      const verifyOptions = {
        algorithms: source.algorithms,
        requiredClaims: ['exp'],
        audience: this.options.authAudience,
        issuer: this.options.authIssuer,
      };
      // The overloads differ only in the key's type; both paths verify the same way.
      const result =
        typeof source.key === 'function'
          ? await jwtVerify(token, source.key, verifyOptions)
          : await jwtVerify(token, source.key, verifyOptions);
      payload = result.payload;
    } catch (err) {
      if (err instanceof errors.JWTExpired) return { failure: 'expired', message: 'token expired' };
      return { failure: 'invalid', message: `invalid token: ${(err as Error).message}`.slice(0, 200) };
    }
    return grantOf(payload);
  }

  /** The WebSocket upgrade: the token comes from ?token= or, when that is absent or empty, an Authorization: Bearer header. */
  connect(req: IncomingMessage, url: URL): Promise<AuthResult> {
    // `||`, not `??`: an empty ?token= must not hide a valid header.
    return this.verify(url.searchParams.get('token') || bearer(req));
  }

  /** POST /publish: the API key, or a token with publish rights (checked per channel by the caller). */
  async publisher(req: IncomingMessage): Promise<AuthResult> {
    if (this.source === null && this.apiKeyDigest === null) return OPEN_GRANT;
    const presented = bearer(req);
    if (presented === undefined) return { failure: 'missing', message: 'an Authorization: Bearer token or API key is required' };
    if (this.apiKeyDigest !== null && timingSafeEqual(digest(presented), this.apiKeyDigest)) return API_KEY_GRANT;
    if (this.source === null) return { failure: 'invalid', message: 'wrong API key' };
    return this.verify(presented);
  }

  /** GET /history: the API key (every channel), or a token with subscribe rights (checked per channel by the caller). */
  async historyReader(req: IncomingMessage): Promise<AuthResult> {
    const result = await this.publisher(req);
    return result === API_KEY_GRANT ? HISTORY_KEY_GRANT : result;
  }
}

/** Fixed-length digests compare in constant time whatever the presented length. */
function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function bearer(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match === null ? undefined : match[1];
}

function grantOf(payload: JWTPayload): AuthResult {
  const subscribe = ChannelPatterns.parse(payload.subscribe, 'subscribe');
  if (typeof subscribe === 'string') return { failure: 'invalid', message: subscribe };
  const publish = ChannelPatterns.parse(payload.publish, 'publish');
  if (typeof publish === 'string') return { failure: 'invalid', message: publish };
  // jose has checked that exp is present and a number in the future.
  return { subject: payload.sub, expiresAt: payload.exp! * 1000, subscribe, publish };
}

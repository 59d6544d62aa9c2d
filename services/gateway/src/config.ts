// Every setting is an environment variable, validated once at start and frozen.
// README.md lists the same variables; test/unit/config.test.ts keeps them in step.

export const OVERFLOW_POLICIES = ['drop-oldest', 'drop-newest', 'evict'] as const;
export type OverflowPolicy = (typeof OVERFLOW_POLICIES)[number];

import { createPublicKey } from 'node:crypto';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly redisUrl: string | undefined;
  readonly redisPrefix: string;
  readonly redisTimeoutMs: number;
  readonly busProbeIntervalMs: number;
  readonly busProbeTimeoutMs: number;
  readonly queueMaxBytes: number;
  readonly queueMaxMessages: number;
  readonly overflowPolicy: OverflowPolicy;
  readonly slowClientEvictMs: number;
  readonly pingIntervalMs: number;
  readonly maxMessageBytes: number;
  readonly maxChannelsPerClient: number;
  readonly drainMs: number;
  readonly closeTimeoutMs: number;
  readonly logLevel: LogLevel;
  readonly authJwtSecret: string | undefined;
  readonly authPublicKey: string | undefined;
  readonly authJwksUrl: string | undefined;
  readonly authAudience: string | undefined;
  readonly authIssuer: string | undefined;
  readonly publishApiKey: string | undefined;
  readonly allowedOrigins: readonly string[] | undefined;
  readonly maxConnections: number;
  readonly rateLimitPerSec: number;
  readonly rateLimitBurst: number;
  readonly handshakeTimeoutMs: number;
  readonly permessageDeflate: boolean;
}

/** A bad setting: the message is the one line printed before exiting. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`invalid config: ${variable} ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

interface IntSpec {
  readonly min: number;
  readonly max: number;
  readonly fallback: number;
}

function int(env: Env, name: string, spec: IntSpec): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return spec.fallback;
  const text = raw.trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < spec.min || value > spec.max) {
    throw new ConfigError(
      name,
      `must be an integer from ${spec.min} to ${spec.max} (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = raw.trim() as T;
  if (!allowed.includes(value)) {
    throw new ConfigError(name, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(raw)})`);
  }
  return value;
}

function redisUrl(env: Env): string | undefined {
  const raw = env.REDIS_URL;
  if (raw === undefined || raw.trim() === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL (got ${JSON.stringify(raw)})`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL (got ${JSON.stringify(raw)})`);
  }
  return url.toString();
}

function redisPrefix(env: Env): string {
  const raw = env.REDIS_PREFIX;
  if (raw === undefined) return 'hubcast:';
  // Printable ASCII without spaces keeps Redis channel names readable in MONITOR and PUBSUB output.
  if (!/^[\x21-\x7e]{0,64}$/.test(raw)) {
    throw new ConfigError(
      'REDIS_PREFIX',
      `must be 0 to 64 printable ASCII characters without spaces (got ${JSON.stringify(raw)})`,
    );
  }
  return raw;
}

function host(env: Env): string {
  const raw = env.HOST;
  if (raw === undefined || raw.trim() === '') return '0.0.0.0';
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(raw.trim())) {
    throw new ConfigError('HOST', `must be an IP address or host name (got ${JSON.stringify(raw)})`);
  }
  return raw.trim();
}

function optional(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new ConfigError(name, `must be true or false (got ${JSON.stringify(env[name])})`);
}

/** Shorter secrets can be brute-forced offline from any one token (RFC 7518 3.2: at least 256 bits). */
const MIN_SECRET_CHARS = 32;

function secret(env: Env, name: string, minChars: number): string | undefined {
  const value = optional(env, name);
  if (value !== undefined && value.length < minChars) {
    throw new ConfigError(name, `must be at least ${minChars} characters (got ${value.length})`);
  }
  return value;
}

/** A PEM public key of a kind the gateway pins an algorithm for: RSA (RS256) or EC P-256 (ES256). */
function publicKey(env: Env): string | undefined {
  const raw = optional(env, 'AUTH_PUBLIC_KEY');
  if (raw === undefined) return undefined;
  // Environment files often carry a PEM on one line with literal \n.
  const pem = raw.replace(/\\n/g, '\n');
  const bad = (why: string): ConfigError =>
    new ConfigError('AUTH_PUBLIC_KEY', `must be a PEM RSA (2048 bits or more) or EC P-256 public key (${why})`);
  let key;
  try {
    key = createPublicKey(pem);
  } catch {
    throw bad('not a PEM public key');
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= 2048) return pem;
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return pem;
  throw bad(`got ${key.asymmetricKeyType ?? 'unknown'} ${details.modulusLength ?? details.namedCurve ?? ''}`.trim());
}

function jwksUrl(env: Env): string | undefined {
  const raw = optional(env, 'AUTH_JWKS_URL');
  if (raw === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new ConfigError('AUTH_JWKS_URL', `must be an https:// or http:// URL (got ${JSON.stringify(env.AUTH_JWKS_URL)})`);
  }
  return url.toString();
}

/** Comma-separated origins (scheme://host[:port]), normalised as browsers send them. */
function origins(env: Env): readonly string[] | undefined {
  const raw = optional(env, 'ALLOWED_ORIGINS');
  if (raw === undefined) return undefined;
  const out: string[] = [];
  for (const item of raw.split(',')) {
    let origin: string | undefined;
    try {
      const url = new URL(item.trim());
      if ((url.protocol === 'http:' || url.protocol === 'https:') && url.pathname === '/' && !url.search) origin = url.origin;
    } catch {
      origin = undefined;
    }
    if (origin === undefined) {
      throw new ConfigError(
        'ALLOWED_ORIGINS',
        `must be a comma-separated list of origins like https://app.example.com (got ${JSON.stringify(item.trim())})`,
      );
    }
    out.push(origin);
  }
  return Object.freeze(out);
}

const HOUR_MS = 3_600_000;
/** The largest header of an unmasked server-to-client WebSocket frame. */
const MAX_FRAME_HEADER_BYTES = 10;

/** Reads and validates the environment. Throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const config: Config = {
    // TCP port for HTTP and WebSocket; 0 picks a free port (logged at start).
    port: int(env, 'PORT', { min: 0, max: 65535, fallback: 8080 }),
    // Address to listen on.
    host: host(env),
    // Redis for the cross-gateway bus; unset means the in-process bus (one gateway).
    redisUrl: redisUrl(env),
    // Prefix of every Redis channel this gateway uses.
    redisPrefix: redisPrefix(env),
    // A Redis command or health PING unanswered this long fails; a failed PING marks the bus not ready.
    redisTimeoutMs: int(env, 'REDIS_TIMEOUT_MS', { min: 50, max: 60_000, fallback: 2000 }),
    // Publish a pub/sub probe through Redis this often, to catch a subscriber that is connected but starved.
    busProbeIntervalMs: int(env, 'BUS_PROBE_INTERVAL_MS', { min: 50, max: HOUR_MS, fallback: 2000 }),
    // A probe not back on the subscriber within this long marks the bus not ready (/readyz 503).
    busProbeTimeoutMs: int(env, 'BUS_PROBE_TIMEOUT_MS', { min: 10, max: HOUR_MS, fallback: 3000 }),
    // Per-client send queue bound in bytes (frames waiting while the socket is backed up).
    queueMaxBytes: int(env, 'QUEUE_MAX_BYTES', { min: 1024, max: 1 << 30, fallback: 1 << 20 }),
    // Per-client send queue bound in messages.
    queueMaxMessages: int(env, 'QUEUE_MAX_MESSAGES', { min: 1, max: 1_000_000, fallback: 256 }),
    // What to do when a frame does not fit in a client's queue.
    overflowPolicy: oneOf(env, 'OVERFLOW_POLICY', OVERFLOW_POLICIES, 'drop-oldest'),
    // Under a drop policy, evict a client that stays over its bound this long.
    slowClientEvictMs: int(env, 'SLOW_CLIENT_EVICT_MS', { min: 1, max: HOUR_MS, fallback: 5000 }),
    // Ping every client this often; a client that has not answered the previous ping is terminated.
    pingIntervalMs: int(env, 'PING_INTERVAL_MS', { min: 100, max: HOUR_MS, fallback: 25_000 }),
    // Largest inbound WebSocket message and HTTP publish body.
    maxMessageBytes: int(env, 'MAX_MESSAGE_BYTES', { min: 128, max: 64 << 20, fallback: 64 << 10 }),
    // Subscriptions one connection may hold.
    maxChannelsPerClient: int(env, 'MAX_CHANNELS_PER_CLIENT', { min: 1, max: 100_000, fallback: 128 }),
    // On SIGTERM/SIGINT, keep serving this long (readyz 503) before closing clients with 1001.
    drainMs: int(env, 'DRAIN_MS', { min: 0, max: HOUR_MS, fallback: 5000 }),
    // After sending a close frame, terminate a peer that has not completed the close within this time.
    closeTimeoutMs: int(env, 'CLOSE_TIMEOUT_MS', { min: 10, max: 60_000, fallback: 3000 }),
    // pino log level.
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    // Token auth (auth.ts): at most one key source. HS256 shared secret.
    authJwtSecret: secret(env, 'AUTH_JWT_SECRET', MIN_SECRET_CHARS),
    // PEM public key: RSA pins RS256, EC P-256 pins ES256.
    authPublicKey: publicKey(env),
    // Remote JWKS (RS256/ES256 keys chosen by kid), fetched and cached by jose.
    authJwksUrl: jwksUrl(env),
    // When set, tokens must carry this aud.
    authAudience: optional(env, 'AUTH_AUDIENCE'),
    // When set, tokens must carry this iss.
    authIssuer: optional(env, 'AUTH_ISSUER'),
    // Bearer key that may POST /publish to any channel (for backends), with or without token auth.
    publishApiKey: secret(env, 'PUBLISH_API_KEY', MIN_SECRET_CHARS),
    // Browser origins allowed to open a WebSocket; unset allows any.
    allowedOrigins: origins(env),
    // Open connections plus upgrades in progress, per gateway; more get 503.
    maxConnections: int(env, 'MAX_CONNECTIONS', { min: 1, max: 1_000_000, fallback: 10_000 }),
    // Per-client inbound token bucket: frames per second refilled...
    rateLimitPerSec: int(env, 'RATE_LIMIT_PER_SEC', { min: 1, max: 1_000_000, fallback: 1000 }),
    // ...and bucket size; a client with more than this many frames refused in one second is closed (1008).
    rateLimitBurst: int(env, 'RATE_LIMIT_BURST', { min: 1, max: 1_000_000, fallback: 2000 }),
    // An HTTP request or upgrade must complete its headers (and an upgrade its handshake) this fast.
    handshakeTimeoutMs: int(env, 'HANDSHAKE_TIMEOUT_MS', { min: 100, max: 120_000, fallback: 10_000 }),
    // Accept compressed frames from clients (bounded: inflated size counts against MAX_MESSAGE_BYTES).
    permessageDeflate: bool(env, 'PERMESSAGE_DEFLATE', false),
  };
  const keySources = (['AUTH_JWT_SECRET', 'AUTH_PUBLIC_KEY', 'AUTH_JWKS_URL'] as const).filter(
    (name) => optional(env, name) !== undefined,
  );
  if (keySources.length > 1) {
    throw new ConfigError(keySources[1]!, `cannot be set together with ${keySources[0]}: set exactly one token key source`);
  }
  for (const name of ['AUTH_AUDIENCE', 'AUTH_ISSUER'] as const) {
    if (optional(env, name) !== undefined && keySources.length === 0) {
      throw new ConfigError(name, 'needs AUTH_JWT_SECRET, AUTH_PUBLIC_KEY or AUTH_JWKS_URL to be set');
    }
  }
  // The queue holds frames: the largest accepted message plus its WebSocket header must fit.
  if (config.queueMaxBytes < config.maxMessageBytes + MAX_FRAME_HEADER_BYTES) {
    throw new ConfigError(
      'QUEUE_MAX_BYTES',
      `must be at least MAX_MESSAGE_BYTES + ${MAX_FRAME_HEADER_BYTES} (${config.maxMessageBytes + MAX_FRAME_HEADER_BYTES}) so every accepted message fits as a frame (got ${config.queueMaxBytes})`,
    );
  }
  return Object.freeze(config);
}

/** Names of every variable loadConfig reads, for the README check. */
export const CONFIG_VARIABLES = [
  'PORT',
  'HOST',
  'REDIS_URL',
  'REDIS_PREFIX',
  'REDIS_TIMEOUT_MS',
  'BUS_PROBE_INTERVAL_MS',
  'BUS_PROBE_TIMEOUT_MS',
  'QUEUE_MAX_BYTES',
  'QUEUE_MAX_MESSAGES',
  'OVERFLOW_POLICY',
  'SLOW_CLIENT_EVICT_MS',
  'PING_INTERVAL_MS',
  'MAX_MESSAGE_BYTES',
  'MAX_CHANNELS_PER_CLIENT',
  'DRAIN_MS',
  'CLOSE_TIMEOUT_MS',
  'LOG_LEVEL',
  'AUTH_JWT_SECRET',
  'AUTH_PUBLIC_KEY',
  'AUTH_JWKS_URL',
  'AUTH_AUDIENCE',
  'AUTH_ISSUER',
  'PUBLISH_API_KEY',
  'ALLOWED_ORIGINS',
  'MAX_CONNECTIONS',
  'RATE_LIMIT_PER_SEC',
  'RATE_LIMIT_BURST',
  'HANDSHAKE_TIMEOUT_MS',
  'PERMESSAGE_DEFLATE',
] as const;

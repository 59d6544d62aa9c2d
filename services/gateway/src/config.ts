// Every setting is an environment variable, validated once at start and frozen. SETTINGS holds one
// entry per setting (variable, parser with its bounds, default, meaning); the Config type,
// CONFIG_VARIABLES and the README check (test/unit/docs.test.ts) all derive from it, so adding a
// setting is one entry here plus its row in README.md's Configuration table.
import { createPublicKey } from 'node:crypto';

export const OVERFLOW_POLICIES = ['drop-oldest', 'drop-newest', 'evict'] as const;
export type OverflowPolicy = (typeof OVERFLOW_POLICIES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** ALLOWED_ORIGINS=* : every origin, explicitly. Parsed to the one-element list [ANY_ORIGIN]. */
export const ANY_ORIGIN = '*';

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

/** Thrown by a parser; loadConfig prefixes the variable. The text says what is allowed. */
class Invalid extends Error {}

export interface Setting<V extends string = string, T = unknown> {
  readonly variable: V;
  /** Parses a value that is set, non-empty and without surrounding whitespace; throws Invalid. */
  readonly parse: (raw: string) => T;
  /** The value when the variable is unset. */
  readonly fallback: T;
  /** What it controls, in a line (README.md has the operator's version). */
  readonly meaning: string;
  /** The empty string is a value of its own (REDIS_PREFIX), not a mistake. */
  readonly emptyAllowed?: boolean;
  /** A PEM: its final line break belongs to the format. */
  readonly pem?: boolean;
  /** Never echo the value in an error. */
  readonly secret?: boolean;
}

type Extra = Pick<Setting, 'emptyAllowed' | 'pem' | 'secret'>;

const quote = (raw: string): string => JSON.stringify(raw);

function setting<const V extends string, T>(
  variable: V,
  fallback: T,
  parse: (raw: string) => T,
  meaning: string,
  extra: Extra = {},
): Setting<V, T> {
  return { variable, fallback, parse, meaning, ...extra };
}

function int<const V extends string>(variable: V, min: number, max: number, fallback: number, meaning: string): Setting<V, number> {
  return setting(variable, fallback, (raw) => {
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new Invalid(`must be an integer from ${min} to ${max} (got ${quote(raw)})`);
    }
    return value;
  }, meaning);
}

function oneOf<const V extends string, T extends string>(variable: V, allowed: readonly T[], fallback: NoInfer<T>, meaning: string): Setting<V, T> {
  return setting(variable, fallback, (raw) => {
    if (!(allowed as readonly string[]).includes(raw)) throw new Invalid(`must be one of ${allowed.join(', ')} (got ${quote(raw)})`);
    return raw as T;
  }, meaning);
}

function flag<const V extends string>(variable: V, fallback: boolean, meaning: string): Setting<V, boolean> {
  return setting(variable, fallback, (raw) => {
    if (raw === 'true' || raw === 'false') return raw === 'true';
    throw new Invalid(`must be true or false (got ${quote(raw)})`);
  }, meaning);
}

/** A setting that is off unless set. */
function optional<const V extends string, T>(variable: V, parse: (raw: string) => T, meaning: string, extra: Extra = {}): Setting<V, T | undefined> {
  return setting<V, T | undefined>(variable, undefined, parse, meaning, extra);
}

/** Shorter secrets can be brute-forced offline from any one token (RFC 7518 3.2: at least 256 bits). */
const MIN_SECRET_CHARS = 32;

function secret(raw: string): string {
  if (raw.length < MIN_SECRET_CHARS) throw new Invalid(`must be at least ${MIN_SECRET_CHARS} characters (got ${raw.length})`);
  return raw;
}

function url(raw: string, protocols: readonly string[], what: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(raw);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || !protocols.includes(parsed.protocol)) throw new Invalid(`must be ${what} (got ${quote(raw)})`);
  return parsed.toString();
}

function host(raw: string): string {
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(raw)) throw new Invalid(`must be an IP address or host name (got ${quote(raw)})`);
  return raw;
}

/** A Redis Cluster seed node: where ioredis first reads the slot map. */
export interface SeedNode {
  readonly host: string;
  readonly port: number;
}

/** host:port,host:port,…: the seed nodes of a Redis Cluster (any few of its nodes; ioredis finds the rest). */
function seedNodes(raw: string): readonly SeedNode[] {
  const out: SeedNode[] = [];
  for (const item of raw.split(',')) {
    const match = /^([A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(item);
    const port = Number(match?.[2]);
    if (match === null || port < 1 || port > 65535) {
      throw new Invalid(`must be a comma-separated list of host:port, e.g. redis-1:6379,redis-2:6379 (got ${quote(item)})`);
    }
    out.push(Object.freeze({ host: match[1]!.replace(/^\[|\]$/g, ''), port }));
  }
  return Object.freeze(out);
}

function redisPrefix(raw: string): string {
  // Printable ASCII without spaces keeps Redis channel names readable in MONITOR and PUBSUB output.
  if (!/^[\x21-\x7e]{0,64}$/.test(raw)) {
    throw new Invalid(`must be 0 to 64 printable ASCII characters without spaces (got ${quote(raw)})`);
  }
  return raw;
}

/** A PEM public key of a kind the gateway pins an algorithm for: RSA (RS256) or EC P-256 (ES256). */
function publicKey(raw: string): string {
  // Environment files often carry a PEM on one line with literal \n.
  const pem = raw.replace(/\\n/g, '\n');
  const bad = (why: string): Invalid => new Invalid(`must be a PEM RSA (2048 bits or more) or EC P-256 public key (${why})`);
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

/** `*`, or comma-separated origins (scheme://host[:port]), normalised as browsers send them. */
function origins(raw: string): readonly string[] {
  if (raw === ANY_ORIGIN) return Object.freeze([ANY_ORIGIN]);
  const out: string[] = [];
  for (const item of raw.split(',')) {
    let origin: string | undefined;
    try {
      const parsed = new URL(item.trim());
      if ((parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.pathname === '/' && !parsed.search) origin = parsed.origin;
    } catch {
      origin = undefined;
    }
    if (origin === undefined) {
      throw new Invalid(`must be * or a comma-separated list of origins like https://app.example.com (got ${quote(item.trim())})`);
    }
    out.push(origin);
  }
  return Object.freeze(out);
}

const HOUR_MS = 3_600_000;
const text = (raw: string): string => raw;

const REDIS_URL = (raw: string): string => url(raw, ['redis:', 'rediss:'], 'a redis:// or rediss:// URL');
const HTTP_URL = (raw: string): string => url(raw, ['https:', 'http:'], 'an https:// or http:// URL');

/** One entry per setting, in the order they are checked (the first bad one is reported). */
export const SETTINGS = {
  port: int('PORT', 0, 65535, 8080, 'TCP port for HTTP and WebSocket; 0 picks a free port (logged at start).'),
  host: setting('HOST', '0.0.0.0', host, 'Address to listen on.'),
  redisUrl: optional('REDIS_URL', REDIS_URL, 'Redis for the cross-gateway bus; unset means the in-process bus (one gateway).'),
  redisClusterNodes: optional('REDIS_CLUSTER_NODES', seedNodes, 'Redis Cluster seed nodes (host:port,…) for the bus, instead of REDIS_URL.'),
  redisPrefix: setting('REDIS_PREFIX', 'hubcast:', redisPrefix, 'Prefix of every Redis channel.', { emptyAllowed: true }),
  redisTimeoutMs: int('REDIS_TIMEOUT_MS', 50, 60_000, 2000, 'A Redis command or health PING unanswered this long fails.'),
  busProbeIntervalMs: int('BUS_PROBE_INTERVAL_MS', 50, HOUR_MS, 2000, 'How often a pub/sub probe goes through Redis.'),
  busProbeTimeoutMs: int('BUS_PROBE_TIMEOUT_MS', 10, HOUR_MS, 3000, 'A probe not back this fast marks the bus not ready.'),
  queueMaxBytes: int('QUEUE_MAX_BYTES', 1024, 1 << 30, 1 << 20, 'Per-client send queue bound in bytes.'),
  queueMaxMessages: int('QUEUE_MAX_MESSAGES', 1, 1_000_000, 256, 'Per-client send queue bound in messages.'),
  overflowPolicy: oneOf('OVERFLOW_POLICY', OVERFLOW_POLICIES, 'drop-oldest', 'What happens when a frame does not fit in a queue.'),
  slowClientEvictMs: int('SLOW_CLIENT_EVICT_MS', 1, HOUR_MS, 5000, 'Evict a client this long behind: over its bound (drop policies), or behind a replay backlog (any policy).'),
  pingIntervalMs: int('PING_INTERVAL_MS', 100, HOUR_MS, 25_000, 'Heartbeat interval; a peer that misses a pong is terminated.'),
  maxMessageBytes: int('MAX_MESSAGE_BYTES', 128, 64 << 20, 64 << 10, 'Largest inbound WebSocket message and HTTP publish body.'),
  maxChannelsPerClient: int('MAX_CHANNELS_PER_CLIENT', 1, 100_000, 128, 'Subscriptions one connection may hold.'),
  drainMs: int('DRAIN_MS', 0, HOUR_MS, 5000, 'On SIGTERM/SIGINT, keep serving this long before closing clients.'),
  closeTimeoutMs: int('CLOSE_TIMEOUT_MS', 10, 60_000, 3000, 'Terminate a peer that has not completed a close this fast.'),
  logLevel: oneOf('LOG_LEVEL', LOG_LEVELS, 'info', 'pino log level.'),
  authJwtSecret: optional('AUTH_JWT_SECRET', secret, 'HS256 secret for tokens.', { secret: true }),
  authPublicKey: optional('AUTH_PUBLIC_KEY', publicKey, 'PEM public key for tokens: RSA pins RS256, EC P-256 ES256.', { pem: true }),
  authJwksUrl: optional('AUTH_JWKS_URL', HTTP_URL, 'JWKS for tokens, RS256/ES256 keys chosen by kid.'),
  authAudience: optional('AUTH_AUDIENCE', text, 'When set, tokens must carry this aud.'),
  authIssuer: optional('AUTH_ISSUER', text, 'When set, tokens must carry this iss.'),
  publishApiKey: optional('PUBLISH_API_KEY', secret, 'Bearer key that may POST /publish to any channel.', { secret: true }),
  allowedOrigins: optional('ALLOWED_ORIGINS', origins, 'Browser origins allowed (comma-separated), or * for all.'),
  maxConnections: int('MAX_CONNECTIONS', 1, 1_000_000, 10_000, 'Open connections plus upgrades in progress; more get 503.'),
  rateLimitPerSec: int('RATE_LIMIT_PER_SEC', 1, 1_000_000, 1000, 'Per-client inbound frames per second (token bucket refill).'),
  rateLimitBurst: int('RATE_LIMIT_BURST', 1, 1_000_000, 2000, 'Bucket size; more refused in one second closes with 1008.'),
  handshakeTimeoutMs: int('HANDSHAKE_TIMEOUT_MS', 100, 120_000, 10_000, 'Headers, body and upgrade must arrive this fast.'),
  historySize: int('HISTORY_SIZE', 0, 100_000, 100, 'Messages kept per channel for recovery and gap repair; 0 turns history off.'),
  historyTtlS: int('HISTORY_TTL_S', 1, 30 * 86_400, 300, "A channel's history expires this long after its last publish."),
  recoveryMaxMessages: int('RECOVERY_MAX_MESSAGES', 1, 100_000, 1000, 'Most missed messages one subscribe with since replays.'),
  permessageDeflate: flag('PERMESSAGE_DEFLATE', false, 'Accept compressed frames from clients (bounded).'),
  serveClient: flag('SERVE_CLIENT', true, 'Serve the demo page at / and the SDK bundle at /hubcast.js.'),
} as const;

type Settings = typeof SETTINGS;
type ValueOf<S> = S extends Setting<string, infer T> ? T : never;
export type Config = { readonly [K in keyof Settings]: ValueOf<Settings[K]> };
export type ConfigVariable = Settings[keyof Settings]['variable'];

/** Names of every variable loadConfig reads, in SETTINGS order. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = Object.freeze(Object.values(SETTINGS).map((s) => s.variable));

/** The largest header of an unmasked server-to-client WebSocket frame. */
const MAX_FRAME_HEADER_BYTES = 10;
/** Token key sources: at most one may be set. */
const KEY_SOURCES = ['authJwtSecret', 'authPublicKey', 'authJwksUrl'] as const;

/** Rules across settings, checked once every setting has parsed. Each throws ConfigError. */
const CROSS_CHECKS: readonly ((config: Config) => void)[] = [
  (c) => {
    const names = KEY_SOURCES.map((key) => SETTINGS[key].variable);
    const set = KEY_SOURCES.filter((key) => c[key] !== undefined).map((key) => SETTINGS[key].variable);
    if (set.length > 1) throw new ConfigError(set[1]!, `cannot be set together with ${set[0]}: set exactly one token key source`);
    for (const key of ['authAudience', 'authIssuer'] as const) {
      if (c[key] !== undefined && set.length === 0) {
        throw new ConfigError(SETTINGS[key].variable, `needs ${names.slice(0, -1).join(', ')} or ${names.at(-1)} to be set`);
      }
    }
  },
  (c) => {
    if (c.redisUrl !== undefined && c.redisClusterNodes !== undefined) {
      throw new ConfigError('REDIS_CLUSTER_NODES', 'cannot be set together with REDIS_URL: set exactly one of REDIS_URL (one Redis) and REDIS_CLUSTER_NODES (Redis Cluster)');
    }
  },
  (c) => {
    // The queue holds frames: the largest accepted message plus its WebSocket header must fit.
    const least = c.maxMessageBytes + MAX_FRAME_HEADER_BYTES;
    if (c.queueMaxBytes < least) {
      throw new ConfigError(
        'QUEUE_MAX_BYTES',
        `must be at least MAX_MESSAGE_BYTES + ${MAX_FRAME_HEADER_BYTES} (${least}) so every accepted message fits as a frame (got ${c.queueMaxBytes})`,
      );
    }
  },
];

/** One setting's value from its raw text: unset gives the default; empty or padded is a mistake. */
function read(spec: Setting, raw: string | undefined): unknown {
  if (raw === undefined) return spec.fallback;
  const got = spec.secret ? '' : ` (got ${quote(raw)})`;
  if (raw === '' && !spec.emptyAllowed) throw new ConfigError(spec.variable, `must not be empty; unset it for the default${got}`);
  // Padding is almost always a quoting slip in an env file; accepting it would hide which value is meant.
  const body = spec.pem ? raw.replace(/\r?\n$/, '') : raw;
  if (/^\s|\s$/.test(body)) throw new ConfigError(spec.variable, `must not have leading or trailing whitespace${got}`);
  try {
    return spec.parse(body);
  } catch (err) {
    if (err instanceof Invalid) throw new ConfigError(spec.variable, err.message);
    throw err;
  }
}

/** Reads and validates the environment. Throws ConfigError naming the first bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS) as [string, Setting][]) config[key] = read(spec, env[spec.variable]);
  for (const check of CROSS_CHECKS) check(config as Config);
  return Object.freeze(config) as Config;
}

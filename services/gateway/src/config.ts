// Every setting is an environment variable, validated once at start and frozen.
// README.md lists the same variables; test/unit/config.test.ts keeps them in step.

export const OVERFLOW_POLICIES = ['drop-oldest', 'drop-newest', 'evict'] as const;
export type OverflowPolicy = (typeof OVERFLOW_POLICIES)[number];

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
  };
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
] as const;

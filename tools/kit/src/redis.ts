// Redis for tools and tests: a redis-server process on a loopback port, or (startRedis) whatever
// this machine offers: REDIS_URL when set, else that binary, else a testcontainers container.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { type Proc, hasProgram, startProc } from './process.js';

export const NO_REDIS =
  'No Redis for integration tests: install redis-server (apt-get install -y redis-server), set REDIS_URL, or start a Docker engine';

export interface RedisServerOptions {
  readonly host?: string;
  readonly port: number;
  /** Process name in errors and log prefixes (default "redis"). */
  readonly name?: string;
  readonly onLine?: (line: string) => void;
  readonly timeoutMs?: number;
}

/** redis-server without persistence on host:port, resolved once it accepts connections. */
export async function startRedisServer(options: RedisServerOptions): Promise<Proc> {
  const host = options.host ?? '127.0.0.1';
  const args = ['--port', String(options.port), '--bind', host, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];
  const proc = startProc(options.name ?? 'redis', 'redis-server', args, { onLine: options.onLine });
  try {
    await proc.waitForLine(/Ready to accept connections/, options.timeoutMs ?? 10_000);
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  return proc;
}

export interface RedisHandle {
  readonly url: string;
  /** Why stop()/start() are unavailable, or null when this Redis can be restarted. */
  readonly restartUnsupported: string | null;
  /** The redis-server process id while this kit runs it (for /proc readings in the benchmark), else undefined. */
  readonly pid: number | undefined;
  /** Kills the server (SIGKILL: an abrupt outage, not a clean shutdown). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): sockets stay open, nothing is answered. */
  freeze(): void;
  /** Thaws a frozen server (SIGCONT). */
  thaw(): void;
  /** Closes the connections made by client() and stops a server this kit started. */
  close(): Promise<void>;
  /** A plain command connection (PUBSUB NUMSUB and the like). */
  client(): Redis;
}

/** A Redis key/channel prefix no other user of the same Redis shares. */
export function uniquePrefix(): string {
  return `t${randomBytes(4).toString('hex')}:`;
}

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

function trackClients(): { make(url: string): Redis; closeAll(): void } {
  const clients: Redis[] = [];
  return {
    make(url) {
      const conn = new Redis(url, { maxRetriesPerRequest: 1 });
      conn.on('error', () => undefined);
      clients.push(conn);
      return conn;
    },
    closeAll() {
      for (const c of clients) c.disconnect();
    },
  };
}

/** A Redis this kit did not start as a process: usable, but never stopped, restarted or frozen. */
function uncontrolled(url: string, why: string, shutdown: () => Promise<void>): RedisHandle {
  const clients = trackClients();
  const refuse = (): never => {
    throw new Error(`cannot stop, restart or freeze this Redis: ${why}`);
  };
  return {
    url,
    restartUnsupported: why,
    pid: undefined,
    stop: async () => refuse(),
    start: async () => refuse(),
    freeze: refuse,
    thaw: refuse,
    close: async () => {
      clients.closeAll();
      await shutdown();
    },
    client: () => clients.make(url),
  };
}

async function binary(): Promise<RedisHandle> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const clients = trackClients();
  let proc: Proc | null = null;
  const start = async (): Promise<void> => {
    proc = await startRedisServer({ port });
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = null;
    await p?.stop('SIGKILL');
  };
  await start();
  return {
    url,
    restartUnsupported: null,
    get pid() {
      return proc?.pid;
    },
    stop,
    start,
    freeze: () => proc?.child.kill('SIGSTOP'),
    thaw: () => proc?.child.kill('SIGCONT'),
    close: async () => {
      clients.closeAll();
      proc?.child.kill('SIGCONT');
      await stop();
    },
    client: () => clients.make(url),
  };
}

async function container(): Promise<RedisHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const started = await new GenericContainer('redis:7')
    .withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
    .start();
  const url = `redis://${started.getHost()}:${started.getMappedPort(6379)}`;
  return uncontrolled(url, 'a restarted container gets a new host port', async () => {
    await started.stop();
  });
}

/** Starts (or finds) a Redis for one test file or one benchmark. Throws NO_REDIS when none can be had. */
export async function startRedis(): Promise<RedisHandle> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv !== undefined && fromEnv !== '') {
    return uncontrolled(fromEnv, 'REDIS_URL points at a Redis this test cannot restart', async () => undefined);
  }
  if (hasProgram('redis-server')) return binary();
  if (dockerAnswers()) return container();
  throw new Error(NO_REDIS);
}

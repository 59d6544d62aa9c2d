// A real Redis for integration tests: REDIS_URL when set, else a redis-server binary on an
// ephemeral port, else a testcontainers container when a Docker engine answers.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { freePort, waitUntil } from './wait.js';

export const NO_REDIS =
  'No Redis for integration tests: install redis-server (apt-get install -y redis-server), set REDIS_URL, or start a Docker engine';

export interface RedisHandle {
  readonly url: string;
  /** Why stop()/start() are unavailable, or null when this Redis can be restarted. */
  readonly restartUnsupported: string | null;
  /** The redis-server process id while this helper runs it (for /proc readings in the benchmark), else undefined. */
  readonly pid: number | undefined;
  /** Kills the server (SIGKILL: an abrupt outage, not a clean shutdown). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): sockets stay open, nothing is answered. */
  freeze(): void;
  /** Thaws a frozen server (SIGCONT). */
  thaw(): void;
  /** Closes the test's connections and stops a server this helper started. */
  close(): Promise<void>;
  /** A plain command connection for assertions (PUBSUB NUMSUB and the like). */
  client(): Redis;
}

/** A Redis key/channel prefix no other test shares. */
export function uniquePrefix(): string {
  return `t${randomBytes(4).toString('hex')}:`;
}

function hasBinary(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

async function ping(url: string): Promise<boolean> {
  const conn = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  conn.on('error', () => undefined);
  try {
    await conn.connect();
    return (await conn.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    conn.disconnect();
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

/** A Redis this helper did not start as a process: usable, but never stopped, restarted or frozen. */
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
  let proc: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
      { stdio: 'ignore' },
    );
    await waitUntil(() => ping(url), { timeoutMs: 10_000, what: `redis-server on port ${port}` });
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (p === null || p.exitCode !== null) return;
    const exited = once(p, 'exit');
    p.kill('SIGKILL');
    await exited;
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
    freeze: () => proc?.kill('SIGSTOP'),
    thaw: () => proc?.kill('SIGCONT'),
    close: async () => {
      clients.closeAll();
      proc?.kill('SIGCONT');
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

/** Starts (or finds) a Redis for one test file. Throws NO_REDIS when none can be had. */
export async function startRedis(): Promise<RedisHandle> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv !== undefined && fromEnv !== '') {
    return uncontrolled(fromEnv, 'REDIS_URL points at a Redis this test cannot restart', async () => undefined);
  }
  if (hasBinary('redis-server')) return binary();
  if (dockerAnswers()) return container();
  throw new Error(NO_REDIS);
}

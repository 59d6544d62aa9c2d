// Publish cost on one Redis, per mode of writing the publishes: one command per publish (the
// gateway before issue 13), the same with ioredis auto-pipelining, and one command per event-loop
// turn (publish-batch.ts: the history batch script, or with history off one script or one
// pipeline of PUBLISHes). Each mode publishes --rate messages/s of ~100 B spread over --channels
// channels for --seconds, while a redis-cli process holds a subscription to every channel (Redis
// delivers each message once). Reported: Node CPU per publish (process.cpuUsage: the publisher
// alone) and Redis CPU per publish (/proc/<pid>/stat of the redis-server this tool starts).
// With --redis-cluster: the same on a local six-node Redis Cluster (CPU of every node), one
// command per publish against one script call per run of one slot, each with and without
// auto-pipelining; no subscriber there (a redis-cli SSUBSCRIBE takes one slot).
//
//   node dist/tools/loadgen/src/bus-batch.js [--rate=3000] [--seconds=5] [--channels=2000,500] [--tick-ms=10] [--modes=a,b] [--redis-cluster]
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { Cluster, Redis } from 'ioredis';
import { RedisBatchWriter, type SendBatch, SlotRunsWriter, publishManyScript } from '../../../services/gateway/src/bus/batch-writer.js';
import { BusUnavailableError, type PublishReceipt } from '../../../services/gateway/src/bus/bus.js';
import { ENVELOPE_BYTES } from '../../../services/gateway/src/bus/envelope.js';
import { RedisHistory } from '../../../services/gateway/src/bus/history-redis.js';
import { type BatchWriter, PublishBatcher } from '../../../services/gateway/src/bus/publish-batch.js';
import { keySlot } from '../../../services/gateway/src/bus/shards.js';
import { parseFlags } from '../../kit/src/flags.js';
import { freePort } from '../../kit/src/ports.js';
import { startRedisServer } from '../../kit/src/redis.js';
import { startRedisCluster } from '../../kit/src/redis-cluster.js';
import { sumCpuMicros } from './procstat.js';

const FLAGS = { rate: 'string', seconds: 'string', channels: 'string', 'tick-ms': 'string', modes: 'string', 'redis-cluster': 'boolean', help: 'boolean' } as const;
const USAGE = 'usage: node dist/tools/loadgen/src/bus-batch.js [--rate=3000] [--seconds=5] [--channels=2000,500] [--tick-ms=10] [--modes=a,b] [--redis-cluster]';
const PREFIX = 'bb:';

type Publish = (channel: string, message: Buffer, n: number) => void;
type Conn = Redis | Cluster;

interface Mode {
  readonly name: string;
  readonly history: boolean;
  readonly autoPipelining: boolean;
  /** How one publish is handed over; done is called once per publish with its outcome. */
  make(redis: Conn, done: PublishReceipt<number>): Publish;
}

const SIZE = 100;
const TTL_S = 300;

function history(redis: Conn): RedisHistory {
  const publishCommand = redis instanceof Cluster ? 'SPUBLISH' : 'PUBLISH';
  return new RedisHistory(redis, { prefix: PREFIX, size: SIZE, ttlS: TTL_S, publishCommand });
}

/** Today's chain per publish: the bus's .then, the pipeline's .then, the connection's closure. */
function chained(p: Promise<unknown>, done: PublishReceipt<number>, n: number): void {
  p.then(ok, fail).then(counted).then((err) => done.settled(n, err === null ? null : new BusUnavailableError(err.message, true)));
}
const ok = (): null => null;
const fail = (err: Error): Error => err;
const counted = (err: Error | null): Error | null => err;

const perCommandHistory = (redis: Conn, done: PublishReceipt<number>): Publish => {
  const h = history(redis);
  return (channel, head, n) => chained(h.publish(channel, `${PREFIX}{${channel}}`, head), done, n);
};
const perCommandPlain = (redis: Conn, done: PublishReceipt<number>): Publish => {
  if (redis instanceof Cluster) return (channel, message, n) => chained(redis.spublish(`${PREFIX}{${channel}}`, message), done, n);
  return (channel, message, n) => chained(redis.publish(PREFIX + channel, message), done, n);
};
/** History off, the alternative to the gateway's script (PUBLISH_MANY_LUA): one ioredis pipeline of PUBLISHes per batch. */
function publishPipeline(redis: Conn): SendBatch {
  if (!(redis instanceof Redis)) throw new Error('one Redis only');
  return (batch) => {
    const pipeline = redis.pipeline();
    for (let i = 0; i < batch.length; i++) pipeline.publish(batch.channels[i]!, batch.messages[i]!);
    return pipeline.exec();
  };
}

function batched(send: SendBatch, redis: Conn, done: PublishReceipt<number>, name: (c: string) => string, slotOf?: (c: string) => number): Publish {
  const perBatch = new RedisBatchWriter(send, () => redis.status === 'ready');
  const writer: BatchWriter = slotOf === undefined ? perBatch : new SlotRunsWriter(slotOf, perBatch);
  const batcher = new PublishBatcher(writer);
  return (channel, message, n) => batcher.add(name(channel), message, done, n);
}

const historyBatch = (redis: Conn, done: PublishReceipt<number>): Publish => {
  const h = history(redis);
  const slotOf = redis instanceof Cluster ? (c: string) => keySlot(`${PREFIX}{${c}}`) : undefined;
  return batched((b) => h.publishBatch(b.channels, b.messages), redis, done, (c) => c, slotOf);
};

const MODES: readonly Mode[] = [
  { name: 'history on, one EVALSHA per publish', history: true, autoPipelining: false, make: perCommandHistory },
  { name: 'history on, EVALSHA per publish, auto-pipelining', history: true, autoPipelining: true, make: perCommandHistory },
  { name: 'history on, one batch EVALSHA per turn', history: true, autoPipelining: false, make: historyBatch },
  { name: 'history off, one PUBLISH per publish', history: false, autoPipelining: false, make: perCommandPlain },
  { name: 'history off, PUBLISH per publish, auto-pipelining', history: false, autoPipelining: true, make: perCommandPlain },
  { name: 'history off, one PUBLISH-many EVALSHA per turn', history: false, autoPipelining: false, make: (redis, done) => batched(publishManyScript(redis, 'PUBLISH'), redis, done, (c) => PREFIX + c) },
  { name: 'history off, one pipeline of PUBLISHes per turn', history: false, autoPipelining: false, make: (redis, done) => batched(publishPipeline(redis), redis, done, (c) => PREFIX + c) },
];

const CLUSTER_MODES: readonly Mode[] = [
  { name: 'cluster, history on, one EVALSHA per publish', history: true, autoPipelining: false, make: perCommandHistory },
  { name: 'cluster, history on, EVALSHA per publish, auto-pipelining', history: true, autoPipelining: true, make: perCommandHistory },
  { name: 'cluster, history on, one batch EVALSHA per run of one slot', history: true, autoPipelining: false, make: historyBatch },
  { name: 'cluster, history on, runs of one slot, auto-pipelining', history: true, autoPipelining: true, make: historyBatch },
  { name: 'cluster, history off, one SPUBLISH per publish', history: false, autoPipelining: false, make: perCommandPlain },
  { name: 'cluster, history off, SPUBLISH per publish, auto-pipelining', history: false, autoPipelining: true, make: perCommandPlain },
  {
    name: 'cluster, history off, one PUBLISH-many EVALSHA per run of one slot (SPUBLISH when alone)',
    history: false,
    autoPipelining: false,
    make: (redis, done) => batched(publishManyScript(redis, 'SPUBLISH'), redis, done, (c) => `${PREFIX}{${c}}`, keySlot),
  },
];

interface Row {
  readonly mode: string;
  readonly channels: number;
  readonly published: number;
  readonly failed: number;
  readonly nodeMicros: number;
  readonly redisMicros: number;
}

/** A ~100 B message: the client frame's head with history on, an enveloped frame with it off. */
function message(channel: string, historyOn: boolean): Buffer {
  const head = `{"op":"message","channel":"${channel}","data":"${'x'.repeat(Math.max(8, 60 - channel.length))}"`;
  if (historyOn) return Buffer.from(head);
  const out = Buffer.alloc(ENVELOPE_BYTES + head.length + 1, 0);
  out[0] = 0xfe;
  out[1] = 1;
  out.write(`${head}}`, ENVELOPE_BYTES);
  return out;
}

/** Where the modes run: one redis-server with a redis-cli subscriber, or a local Redis Cluster without one. */
interface Backend {
  readonly pids: readonly number[];
  connect(autoPipelining: boolean): Promise<Conn>;
  /** Holds a subscription to every channel until the returned stop is called. */
  subscribe(names: readonly string[]): Promise<() => void>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

function ready(conn: Conn): Promise<Conn> {
  return new Promise((resolve) => conn.once('ready', () => resolve(conn)));
}

async function oneRedis(): Promise<Backend> {
  const port = await freePort();
  const server = await startRedisServer({ port, name: 'bus-batch-redis' });
  const admin = new Redis({ port, host: '127.0.0.1' });
  return {
    pids: [server.pid!],
    connect: (autoPipelining) => ready(new Redis({ port, host: '127.0.0.1', enableAutoPipelining: autoPipelining, enableOfflineQueue: false, maxRetriesPerRequest: 0 })),
    subscribe: async (names) => {
      const child = spawn('redis-cli', ['-p', String(port), 'SUBSCRIBE', ...names], { stdio: ['ignore', 'ignore', 'inherit'] });
      const last = names[names.length - 1]!;
      for (let i = 0; i < 500; i++) {
        const reply = (await admin.pubsub('NUMSUB', last)) as [string, number];
        if (Number(reply[1]) > 0) return () => child.kill();
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill();
      throw new Error('redis-cli never subscribed');
    },
    reset: async () => void (await admin.flushall()),
    stop: async () => {
      admin.disconnect();
      await server.stop();
    },
  };
}

async function redisCluster(): Promise<Backend> {
  const rc = await startRedisCluster();
  const admin = new Cluster([...rc.seeds]);
  await ready(admin);
  return {
    pids: rc.nodes.map((n) => n.pid!),
    connect: (autoPipelining) =>
      ready(new Cluster([...rc.seeds], { enableAutoPipelining: autoPipelining, enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } })),
    subscribe: async () => () => undefined,
    reset: async () => {
      await Promise.all(admin.nodes('master').map((m) => m.flushall()));
    },
    stop: async () => {
      admin.disconnect();
      await rc.stop();
    },
  };
}

async function run(mode: Mode, backend: Backend, channelCount: number, rate: number, seconds: number, tickMs: number): Promise<Row> {
  const channels = Array.from({ length: channelCount }, (_, i) => `room${i}`);
  const names = channels.map((c) => (mode.history ? `${PREFIX}{${c}}` : PREFIX + c));
  const unsubscribe = await backend.subscribe(names);
  const redis = await backend.connect(mode.autoPipelining);
  const messages = channels.map((c) => message(c, mode.history));
  let settled = 0;
  let failed = 0;
  let allSettled: (() => void) | null = null;
  const total = Math.round(rate * seconds);
  const done: PublishReceipt<number> = {
    settled(n, err) {
      if (n < 0) return; // warm-up
      settled++;
      if (err !== null) failed++;
      if (settled === total) allSettled?.();
    },
  };
  const publish = mode.make(redis, done);
  // Warm-up (script load, JIT), outside the measurement.
  for (let i = 0; i < 200; i++) publish(channels[i % channelCount]!, messages[i % channelCount]!, -1);
  await new Promise((r) => setTimeout(r, 500));
  const finished = new Promise<void>((resolve) => {
    allSettled = resolve;
  });
  const redis0 = sumCpuMicros(backend.pids);
  const node0 = process.cpuUsage();
  let sent = 0;
  // A stride coprime with the channel count spreads consecutive publishes over the channels.
  const stride = 7919;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
      for (; sent < due; sent++) {
        const c = (sent * stride) % channelCount;
        publish(channels[c]!, messages[c]!, sent);
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, tickMs);
  });
  await finished;
  const node = process.cpuUsage(node0);
  const redisMicros = sumCpuMicros(backend.pids) - redis0;
  redis.disconnect();
  unsubscribe();
  await backend.reset();
  return { mode: mode.name, channels: channelCount, published: total, failed, nodeMicros: node.user + node.system, redisMicros };
}

async function main(): Promise<number> {
  const parsed = parseFlags(process.argv.slice(2), FLAGS);
  if (!parsed.ok || parsed.flags.positional.length > 0 || parsed.flags.values.has('help')) {
    process.stderr.write(`bus-batch: ${parsed.ok ? 'usage' : parsed.error}\n${USAGE}\n`);
    return parsed.ok && parsed.flags.values.has('help') ? 0 : 2;
  }
  const flag = (name: string, fallback: string): string => {
    const v = parsed.flags.values.get(name);
    return typeof v === 'string' ? v : fallback;
  };
  const rate = Number(flag('rate', '3000'));
  const seconds = Number(flag('seconds', '5'));
  const tickMs = Number(flag('tick-ms', '10'));
  const channelCounts = flag('channels', '2000,500').split(',').map(Number);
  const cluster = parsed.flags.values.has('redis-cluster');
  const all = cluster ? CLUSTER_MODES : MODES;
  const only = flag('modes', '').split(',').filter((m) => m !== '').map(Number);
  const modes = only.length === 0 ? all : only.map((i) => all[i]!);
  const backend = cluster ? await redisCluster() : await oneRedis();
  try {
    const rows: Row[] = [];
    for (const channels of channelCounts) for (const mode of modes) rows.push(await run(mode, backend, channels, rate, seconds, tickMs));
    process.stdout.write('| mode | channels | publishes | failed | Node CPU per publish, µs | Redis CPU per publish, µs |\n|---|---|---|---|---|---|\n');
    for (const r of rows) {
      process.stdout.write(`| ${r.mode} | ${r.channels} | ${r.published} | ${r.failed} | ${(r.nodeMicros / r.published).toFixed(2)} | ${(r.redisMicros / r.published).toFixed(2)} |\n`);
    }
    const load = loadavg().map((v) => v.toFixed(2)).join(' ');
    const where = cluster ? 'local Redis Cluster (6 nodes, CPU of all), no subscriber' : 'one redis-server, one redis-cli subscriber of every channel';
    process.stdout.write(`bus-batch: ${rate} publishes/s for ${seconds} s, timer every ${tickMs} ms; ${where}; ${availableParallelism()} cores, load average ${load}\n`);
    return 0;
  } finally {
    await backend.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bus-batch: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);

// Publish cost on one Redis, per mode of writing the publishes: one command per publish (the
// gateway before issue 13), the same with ioredis auto-pipelining, and one command per event-loop
// turn (publish-batch.ts: the history batch script, or with history off one script or one
// pipeline of PUBLISHes). Each mode publishes --rate messages/s of ~100 B spread over --channels
// channels for --seconds, while a redis-cli process holds a subscription to every channel (Redis
// delivers each message once). Reported: Node CPU per publish (process.cpuUsage: the publisher
// alone) and Redis CPU per publish (/proc/<pid>/stat of the redis-server this tool starts).
//
//   node dist/tools/loadgen/src/bus-batch.js [--rate=3000] [--seconds=5] [--channels=2000,500] [--tick-ms=10] [--modes=a,b]
import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { RedisBatchWriter, type SendBatch, publishManyScript } from '../../../services/gateway/src/bus/batch-writer.js';
import { BusUnavailableError, type PublishReceipt } from '../../../services/gateway/src/bus/bus.js';
import { ENVELOPE_BYTES } from '../../../services/gateway/src/bus/envelope.js';
import { RedisHistory } from '../../../services/gateway/src/bus/history-redis.js';
import { PublishBatcher } from '../../../services/gateway/src/bus/publish-batch.js';
import { parseFlags } from '../../kit/src/flags.js';
import { freePort } from '../../kit/src/ports.js';
import { startRedisServer } from '../../kit/src/redis.js';
import { cpuMicros } from './procstat.js';

const FLAGS = { rate: 'string', seconds: 'string', channels: 'string', 'tick-ms': 'string', modes: 'string', help: 'boolean' } as const;
const USAGE = 'usage: node dist/tools/loadgen/src/bus-batch.js [--rate=3000] [--seconds=5] [--channels=2000,500] [--tick-ms=10] [--modes=a,b]';
const PREFIX = 'bb:';

type Publish = (channel: string, message: Buffer, n: number) => void;

interface Mode {
  readonly name: string;
  readonly history: boolean;
  readonly autoPipelining: boolean;
  /** How one publish is handed over; done is called once per publish with its outcome. */
  make(redis: Redis, done: PublishReceipt<number>): Publish;
}

const SIZE = 100;
const TTL_S = 300;

function history(redis: Redis): RedisHistory {
  return new RedisHistory(redis, { prefix: PREFIX, size: SIZE, ttlS: TTL_S, publishCommand: 'PUBLISH' });
}

/** Today's chain per publish: the bus's .then, the pipeline's .then, the connection's closure. */
function chained(p: Promise<unknown>, done: PublishReceipt<number>, n: number): void {
  p.then(ok, fail).then(counted).then((err) => done.settled(n, err === null ? null : new BusUnavailableError(err.message, true)));
}
const ok = (): null => null;
const fail = (err: Error): Error => err;
const counted = (err: Error | null): Error | null => err;

const perCommandHistory = (redis: Redis, done: PublishReceipt<number>): Publish => {
  const h = history(redis);
  return (channel, head, n) => chained(h.publish(channel, `${PREFIX}{${channel}}`, head), done, n);
};
const perCommandPlain = (redis: Redis, done: PublishReceipt<number>): Publish => {
  return (channel, message, n) => chained(redis.publish(PREFIX + channel, message), done, n);
};
/** History off, the alternative to the gateway's script (PUBLISH_MANY_LUA): one ioredis pipeline of PUBLISHes per batch. */
function publishPipeline(redis: Redis): SendBatch {
  return (batch) => {
    const pipeline = redis.pipeline();
    for (let i = 0; i < batch.length; i++) pipeline.publish(batch.channels[i]!, batch.messages[i]!);
    return pipeline.exec();
  };
}

function batched(send: SendBatch, redis: Redis, done: PublishReceipt<number>, name: (c: string) => string): Publish {
  const batcher = new PublishBatcher(new RedisBatchWriter(send, () => redis.status === 'ready'));
  return (channel, message, n) => batcher.add(name(channel), message, done, n);
}

const MODES: readonly Mode[] = [
  { name: 'history on, one EVALSHA per publish', history: true, autoPipelining: false, make: perCommandHistory },
  { name: 'history on, EVALSHA per publish, auto-pipelining', history: true, autoPipelining: true, make: perCommandHistory },
  {
    name: 'history on, one batch EVALSHA per turn',
    history: true,
    autoPipelining: false,
    make: (redis, done) => {
      const h = history(redis);
      return batched((b) => h.publishBatch(b.channels, b.messages), redis, done, (c) => c);
    },
  },
  { name: 'history off, one PUBLISH per publish', history: false, autoPipelining: false, make: perCommandPlain },
  { name: 'history off, PUBLISH per publish, auto-pipelining', history: false, autoPipelining: true, make: perCommandPlain },
  { name: 'history off, one PUBLISH-many EVALSHA per turn', history: false, autoPipelining: false, make: (redis, done) => batched(publishManyScript(redis, 'PUBLISH'), redis, done, (c) => PREFIX + c) },
  { name: 'history off, one pipeline of PUBLISHes per turn', history: false, autoPipelining: false, make: (redis, done) => batched(publishPipeline(redis), redis, done, (c) => PREFIX + c) },
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

async function subscribeAll(port: number, names: readonly string[], admin: Redis): Promise<ChildProcess> {
  const child = spawn('redis-cli', ['-p', String(port), 'SUBSCRIBE', ...names], { stdio: ['ignore', 'ignore', 'inherit'] });
  const last = names[names.length - 1]!;
  for (let i = 0; i < 500; i++) {
    const reply = (await admin.pubsub('NUMSUB', last)) as [string, number];
    if (Number(reply[1]) > 0) return child;
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill();
  throw new Error('redis-cli never subscribed');
}

async function run(mode: Mode, port: number, pid: number, admin: Redis, channelCount: number, rate: number, seconds: number, tickMs: number): Promise<Row> {
  const channels = Array.from({ length: channelCount }, (_, i) => `room${i}`);
  const names = channels.map((c) => (mode.history ? `${PREFIX}{${c}}` : PREFIX + c));
  const subscriber = await subscribeAll(port, names, admin);
  const redis = new Redis({ port, host: '127.0.0.1', enableAutoPipelining: mode.autoPipelining, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
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
  await new Promise((r) => setTimeout(r, 200));
  const finished = new Promise<void>((resolve) => {
    allSettled = resolve;
  });
  const redis0 = cpuMicros(pid);
  const node0 = process.cpuUsage();
  let sent = 0;
  let due = 0;
  // A stride coprime with the channel count spreads consecutive publishes over the channels.
  const stride = 7919;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
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
  const redisMicros = cpuMicros(pid) - redis0;
  redis.disconnect();
  subscriber.kill();
  await admin.flushall();
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
  const only = flag('modes', '').split(',').filter((m) => m !== '').map(Number);
  const modes = only.length === 0 ? MODES : only.map((i) => MODES[i]!);
  const port = await freePort();
  const server = await startRedisServer({ port, name: 'bus-batch-redis' });
  const admin = new Redis({ port, host: '127.0.0.1' });
  const pid = server.pid!;
  try {
    const rows: Row[] = [];
    for (const channels of channelCounts) for (const mode of modes) rows.push(await run(mode, port, pid, admin, channels, rate, seconds, tickMs));
    process.stdout.write('| mode | channels | publishes | failed | Node CPU per publish, µs | Redis CPU per publish, µs |\n|---|---|---|---|---|---|\n');
    for (const r of rows) {
      process.stdout.write(`| ${r.mode} | ${r.channels} | ${r.published} | ${r.failed} | ${(r.nodeMicros / r.published).toFixed(2)} | ${(r.redisMicros / r.published).toFixed(2)} |\n`);
    }
    const load = loadavg().map((v) => v.toFixed(2)).join(' ');
    process.stdout.write(`bus-batch: ${rate} publishes/s for ${seconds} s, timer every ${tickMs} ms; ${availableParallelism()} cores, load average ${load}\n`);
    return 0;
  } finally {
    admin.disconnect();
    await server.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bus-batch: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);

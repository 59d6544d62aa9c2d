// Redis CPU per publish on one master of a local Redis Cluster: a tight pipelined loop of the
// gateway's own history publish (RedisHistory, the script on EVALSHA) against a plain SPUBLISH
// of a frame of the same size, `--subscribers` shard subscribers listening (a gateway each). The figures behind the capacity
// model in docs/scaling.md ("publishes/s per shard with and without history").
//
//   node dist/tools/loadgen/src/redis-cost.js [--count=N] [--rounds=N] [--batch=N] [--subscribers=N]
import { availableParallelism, loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { RedisHistory } from '../../../services/gateway/src/bus/history-redis.js';
import { keySlot } from '../../../services/gateway/src/bus/shards.js';
import { parseFlags } from '../../kit/src/flags.js';
import { infoFields, startRedisCluster } from '../../kit/src/redis-cluster.js';
import { cpuMicros } from './procstat.js';

const FLAGS = { count: 'string', rounds: 'string', batch: 'string', subscribers: 'string', help: 'boolean' } as const;
const USAGE = 'usage: node dist/tools/loadgen/src/redis-cost.js [--count=N] [--rounds=N] [--batch=N] [--subscribers=N]';
const PREFIX = 'cost:';
/** What a gateway hands the script: the client message's JSON head, 64 bytes of data as in the bench. */
const HEAD = Buffer.from(`{"type":"message","channel":"room","data":"${'x'.repeat(64)}"`);
/** The plain variant sends what HISTORY_SIZE=0 sends: an enveloped frame about the script's size. */
const FRAME = Buffer.alloc(HEAD.length + 40, 'y');

interface Cost {
  readonly variant: string;
  readonly count: number;
  /** Redis process CPU (utime + stime) per publish, µs. */
  readonly cpuMicrosPerPublish: number;
  /** Redis's own usec_per_call of the command (INFO commandstats). */
  readonly usecPerCall: number;
  /** Publishes per second this one client reached (client-bound, not Redis's ceiling). */
  readonly publishesPerSecond: number;
}

/** Runs count publishes, batch at a time in flight (one pipeline per batch), and reads what Redis spent. */
async function measure(variant: string, command: string, pid: number, admin: Redis, count: number, batch: number, publish: () => Promise<unknown>): Promise<Cost> {
  await admin.config('RESETSTAT');
  const cpu0 = cpuMicros(pid);
  const t0 = performance.now();
  for (let sent = 0; sent < count; sent += batch) {
    const inFlight: Promise<unknown>[] = [];
    for (let i = 0; i < Math.min(batch, count - sent); i++) inFlight.push(publish());
    await Promise.all(inFlight);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuMicros(pid) - cpu0;
  const stats = infoFields(await admin.info('commandstats'));
  const usec = /usec_per_call=([\d.]+)/.exec(stats.get(`cmdstat_${command}`) ?? '')?.[1];
  return { variant, count, cpuMicrosPerPublish: cpu / count, usecPerCall: Number(usec ?? NaN), publishesPerSecond: count / seconds };
}

async function main(): Promise<number> {
  const parsed = parseFlags(process.argv.slice(2), FLAGS);
  if (!parsed.ok || parsed.flags.positional.length > 0) {
    process.stderr.write(`redis-cost: ${parsed.ok ? `unexpected argument ${parsed.flags.positional[0]}` : parsed.error}\n${USAGE}\n`);
    return 2;
  }
  const value = (name: 'count' | 'rounds' | 'batch' | 'subscribers', fallback: number): number => {
    const v = parsed.flags.values.get(name);
    return typeof v === 'string' ? Number(v) : fallback;
  };
  const count = value('count', 20_000);
  const rounds = value('rounds', 3);
  const batch = value('batch', 100);
  const subscribers = value('subscribers', 1);
  const cluster = await startRedisCluster();
  const clients: Redis[] = [];
  try {
    const master = (await cluster.roles()).find((r) => r.role === 'master' && r.slots.length > 0)!;
    const pid = cluster.nodes.find((n) => n.port === master.port)!.pid!;
    const [first, last] = master.slots[0]!;
    // A channel whose slot this master serves, so every command runs here without a redirect.
    let n = 0;
    while (!((s) => s >= first && s <= last)(keySlot(`${PREFIX}{room${n}}`))) n++;
    const channel = `room${n}`;
    const shardChannel = `${PREFIX}{${channel}}`;
    const connect = (): Redis => {
      const c = new Redis({ host: '127.0.0.1', port: master.port, maxRetriesPerRequest: 1 });
      clients.push(c);
      return c;
    };
    const admin = connect();
    const publisher = connect();
    for (let i = 0; i < subscribers; i++) await connect().ssubscribe(shardChannel);
    const history = new RedisHistory(publisher, { prefix: PREFIX, size: 100, ttlS: 300, publishCommand: 'SPUBLISH' });
    const costs: Cost[] = [];
    for (let round = 1; round <= rounds; round++) {
      costs.push(await measure(`SPUBLISH (history off), round ${round}`, 'spublish', pid, admin, count, batch, () => publisher.spublish(shardChannel, FRAME)));
      costs.push(await measure(`history script (HISTORY_SIZE=100), round ${round}`, 'evalsha', pid, admin, count, batch, () => history.publish(channel, shardChannel, HEAD)));
    }
    const version = infoFields(await admin.info('server')).get('redis_version');
    process.stdout.write('| variant | publishes | Redis CPU per publish, µs (/proc) | usec_per_call (commandstats) | publishes/s of one client |\n|---|---|---|---|---|\n');
    for (const c of costs) {
      process.stdout.write(`| ${c.variant} | ${c.count} | ${c.cpuMicrosPerPublish.toFixed(2)} | ${c.usecPerCall.toFixed(2)} | ${Math.round(c.publishesPerSecond)} |\n`);
    }
    const load = loadavg().map((v) => v.toFixed(2)).join(' ');
    process.stdout.write(`redis-cost: Redis ${version}, master :${master.port}, ${batch} in flight, ${subscribers} shard subscriber(s); ${availableParallelism()} cores, load average ${load}\n`);
    return 0;
  } finally {
    for (const c of clients) c.disconnect();
    await cluster.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`redis-cost: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);

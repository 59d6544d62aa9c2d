// `npm run bench`: every scenario against hubcast, Socket.IO + Redis adapter and the bare ws
// ceiling, in one run; prints one table with ratios and writes the JSON.
//
// Flags as --name=value or --name value:
//   --quick                 small N and short runs (a CI smoke check); exits 1 on any loss, surplus or leftover
//   --scenarios=a,b,…,i     --targets=hubcast,hubcast-nohistory,socketio,ws (history off runs in (a) and (b) only)
//   --json=FILE             where the JSON goes (default bench-results.json)
//   --profile=DIR           run the servers with --cpu-prof, profiles written to DIR
//   --gateways=N            hubcast gateways and Socket.IO servers (default 3)
//   --repeat=N              rounds of (a), (b), (f), (g); each target's median run is reported (default 3, quick 1)
//   --duration=MS           each publish run of (a), (b), (e), (f), (g), (i) lasts MS (more publishes at a small size)
//   --redis-cluster         also runs hubcast on a local six-node Redis Cluster (the publish scenarios) and
//                           prints Redis CPU per publish on the one Redis and on each master
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { parseFlags } from '../../kit/src/flags.js';
import { startRedis } from '../../kit/src/redis.js';
import { type RedisCluster, startRedisCluster } from '../../kit/src/redis-cluster.js';
import { buildRows, formatTable, leftovers } from './report.js';
import type { Measurement } from './rig.js';
import { runScenario, SCENARIOS, type ScenarioId, type ScenarioResult, type Sizes } from './scenarios.js';
import { buildShardRows, formatShardTable } from './shard-report.js';
import { HISTORY_OFF_SCENARIOS, type RedisInfo, type RedisShard, TARGETS, type TargetName } from './targets.js';

const FULL: Sizes = {
  a: { subscribers: 1000, rate: 100, durationMs: 6000, size: 64 },
  b: { subscribers: 200, rate: 1000, durationMs: 6000, size: 64 },
  c: { connections: 10_000 },
  d: { subscribers: 1000, startRate: 20, factor: 1.5, steps: 8, durationMs: 2000, p99Ms: 50 },
  e: { subscribers: 30_000, rate: 10, durationMs: 1000, size: 64, processes: 3 },
  f: { subscribers: 6000, perChannel: 3, rate: 3000, durationMs: 6000, size: 64 },
  g: { subscribers: 3000, perChannel: 1, rate: 3000, durationMs: 6000, size: 64 },
  h: { connections: 20_000, batch: 200, processes: 2, settleMs: 1000 },
  // 100,000 over 6 gateways (16,667 each) and 8 load processes (12,500 each): under the 20,000
  // open files one process may have, and under the ~28,000 ephemeral ports of one source address.
  i: { subscribers: 100_000, rate: 5, durationMs: 1000, size: 64, gateways: 6, processes: 8, settleMs: 2000 },
  gateways: 3,
  subscriberProcesses: 2,
};

const QUICK: Sizes = {
  a: { subscribers: 30, rate: 50, durationMs: 500, size: 64 },
  b: { subscribers: 12, rate: 200, durationMs: 500, size: 64 },
  c: { connections: 300 },
  d: { subscribers: 30, startRate: 50, factor: 2, steps: 2, durationMs: 300, p99Ms: 50 },
  e: { subscribers: 300, rate: 10, durationMs: 300, size: 64, processes: 3 },
  f: { subscribers: 300, perChannel: 3, rate: 300, durationMs: 500, size: 64 },
  g: { subscribers: 150, perChannel: 1, rate: 300, durationMs: 500, size: 64 },
  h: { connections: 1000, batch: 200, processes: 2, settleMs: 300 },
  i: { subscribers: 2000, rate: 10, durationMs: 300, size: 64, gateways: 2, processes: 2, settleMs: 300 },
  gateways: 3,
  subscriberProcesses: 2,
};

/** The scenarios whose targets are on CPU per delivery: each runs `--repeat` rounds. */
const REPEATED: readonly ScenarioId[] = ['a', 'b', 'f', 'g'];

/** The scenarios `--redis-cluster` also runs on the cluster: the publish runs, where Redis CPU per publish means something. */
const ON_CLUSTER: readonly ScenarioId[] = ['a', 'b', 'e', 'f', 'g', 'i'];

const USAGE =
  'usage: npm run bench -- [--quick] [--scenarios=a,b,c,d,e,f,g,h,i] [--targets=hubcast,hubcast-nohistory,socketio,ws] [--json=FILE] [--profile=DIR] [--gateways=N] [--repeat=N] [--duration=MS] [--redis-cluster]';
const FLAGS = { quick: 'boolean', help: 'boolean', 'redis-cluster': 'boolean', duration: 'string', scenarios: 'string', targets: 'string', json: 'string', profile: 'string', gateways: 'string', repeat: 'string' } as const;

const parsed = parseFlags(process.argv.slice(2), FLAGS);
if (!parsed.ok || parsed.flags.positional.length > 0) {
  process.stderr.write(`bench: ${parsed.ok ? `unexpected argument ${parsed.flags.positional[0]}` : parsed.error}\n${USAGE}\n`);
  process.exit(2);
}
if (parsed.flags.values.has('help')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const flags = parsed.flags.values;

function arg(name: keyof typeof FLAGS): string | undefined {
  const value = flags.get(name);
  return typeof value === 'string' ? value : undefined;
}

/**
 * One result for several rounds of a scenario: each figure is its own median (the CPU and the p99
 * of different rounds may be shown side by side, so a verdict never rests on one lucky round),
 * and a failed round, or one that lost or dropped anything, is what is shown: it must be seen.
 */
function median(runs: readonly ScenarioResult[]): ScenarioResult {
  if (runs.length === 1) return runs[0]!;
  const failed = runs.find((r) => r.measurement === undefined);
  if (failed !== undefined) return failed;
  const lossy = runs.find((r) => r.measurement!.lost > 0 || (r.measurement!.dropped ?? 0) > 0 || r.measurement!.silent > 0);
  if (lossy !== undefined) return lossy;
  const mid = (values: number[]): number => values.sort((x, y) => x - y)[Math.floor((values.length - 1) / 2)]!;
  const cpu = (r: ScenarioResult): number => r.measurement!.cpuMicrosPerDelivery;
  const shown = [...runs].sort((x, y) => cpu(x) - cpu(y))[Math.floor((runs.length - 1) / 2)]!;
  const m = shown.measurement!;
  const of = (pick: (x: Measurement) => number): number => mid(runs.map((r) => pick(r.measurement!)));
  return {
    ...shown,
    measurement: {
      ...m,
      gatewayCpuMicrosPerDelivery: of((x) => x.gatewayCpuMicrosPerDelivery),
      latencyMs: { p50: of((x) => x.latencyMs.p50), p99: of((x) => x.latencyMs.p99), p999: of((x) => x.latencyMs.p999), max: of((x) => x.latencyMs.max) },
    },
    runs: runs.map((r) => ({ cpu: cpu(r), p99: r.measurement!.latencyMs.p99 })),
  };
}

/** The publish runs' durationMs set to ms. */
function withDuration(sizes: Sizes, durationMs: number): Partial<Sizes> {
  const { a, b, e, f, g, i } = sizes;
  return { a: { ...a, durationMs }, b: { ...b, durationMs }, e: { ...e, durationMs }, f: { ...f, durationMs }, g: { ...g, durationMs }, i: { ...i, durationMs } };
}

/** The masters of the cluster now, with their processes (for their CPU) and slot ranges. */
async function shardsOf(cluster: RedisCluster): Promise<RedisShard[]> {
  const masters = (await cluster.roles()).filter((r) => r.role === 'master').sort((x, y) => (x.slots[0]?.[0] ?? 0) - (y.slots[0]?.[0] ?? 0));
  return masters.map((m) => {
    const pid = cluster.nodes.find((n) => n.port === m.port)?.pid;
    if (pid === undefined) throw new Error(`no process for master :${m.port}`);
    return { port: m.port, pid, slots: m.slots.map(([a, b]) => `${a}-${b}`).join(',') };
  });
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<number> {
  const quick = flags.has('quick');
  const gateways = arg('gateways');
  const duration = arg('duration');
  const base = quick ? QUICK : FULL;
  const sizes = {
    ...base,
    ...(gateways === undefined ? {} : { gateways: Number(gateways) }),
    ...(duration === undefined ? {} : withDuration(base, Number(duration))),
  };
  const scenarios = (arg('scenarios')?.split(',') ?? [...SCENARIOS]) as ScenarioId[];
  const unknownScenario = scenarios.find((s) => !SCENARIOS.includes(s));
  if (unknownScenario !== undefined) {
    process.stderr.write(`bench: unknown scenario ${unknownScenario}\n${USAGE}\n`);
    return 2;
  }
  const targets = (arg('targets')?.split(',') ?? [...TARGETS]) as TargetName[];
  const unknownTarget = targets.find((t) => !TARGETS.includes(t));
  if (unknownTarget !== undefined) {
    process.stderr.write(`bench: unknown target ${unknownTarget}\n${USAGE}\n`);
    return 2;
  }
  const jsonPath = resolve(arg('json') ?? 'bench-results.json');
  const profileDir = arg('profile');
  const repeat = Number(arg('repeat') ?? (quick ? 1 : 3));
  const nodeArgs = profileDir === undefined ? undefined : ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir)}`];

  const redis = await startRedis();
  const single: RedisInfo = { kind: 'single', url: redis.url, pid: redis.pid };
  let cluster: RedisCluster | undefined;
  let clustered: RedisInfo | undefined;
  const started = Date.now();
  const loadavgAtStart = loadavg();
  const results: ScenarioResult[] = [];
  const clusterResults: ScenarioResult[] = [];
  try {
    if (flags.has('redis-cluster')) {
      cluster = await startRedisCluster();
      clustered = { kind: 'cluster', seedList: cluster.seedList, masters: await shardsOf(cluster) };
      const skipped = scenarios.filter((s) => !ON_CLUSTER.includes(s));
      if (skipped.length > 0) out(`bench: --redis-cluster: (${skipped.join('), (')}) run on one Redis only`);
      if (!targets.includes('hubcast')) out('bench: --redis-cluster runs hubcast only, and hubcast is not among --targets');
    }
    for (const scenario of scenarios) {
      // The scenarios with CPU targets run `repeat` rounds, the targets interleaved, so a burst of load
      // from other processes on the machine does not land on one target only; each target's median run counts.
      const rounds = REPEATED.includes(scenario) ? repeat : 1;
      const runs = new Map<TargetName, ScenarioResult[]>();
      const clusterRuns: ScenarioResult[] = [];
      const here = targets.filter((t) => t !== 'hubcast-nohistory' || HISTORY_OFF_SCENARIOS.includes(scenario));
      for (let round = 0; round < rounds; round++) {
        for (const target of here) {
          const t0 = Date.now();
          const result = await runScenario({ redis: single, sizes, nodeArgs }, scenario, target);
          runs.set(target, [...(runs.get(target) ?? []), result]);
          out(`bench: (${scenario}) ${target}: ${result.error ? `FAILED: ${result.error}` : 'done'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        }
        // The same hubcast run on the cluster, in the same round, so both topologies see the same machine.
        if (clustered !== undefined && targets.includes('hubcast') && ON_CLUSTER.includes(scenario)) {
          const t0 = Date.now();
          const result = await runScenario({ redis: clustered, sizes, nodeArgs }, scenario, 'hubcast');
          clusterRuns.push(result);
          out(`bench: (${scenario}) hubcast on the Redis Cluster: ${result.error ? `FAILED: ${result.error}` : 'done'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        }
      }
      for (const target of here) results.push(median(runs.get(target)!));
      if (clusterRuns.length > 0) clusterResults.push(median(clusterRuns));
    }
  } finally {
    await cluster?.stop();
    await redis.close();
  }

  const table = formatTable(buildRows(results, sizes));
  const machine = { cores: availableParallelism(), node: process.version, loadavgAtStart, loadavgAtEnd: loadavg() };
  const redisCluster = clustered?.kind === 'cluster' ? { masters: clustered.masters, results: clusterResults } : undefined;
  writeFileSync(jsonPath, `${JSON.stringify({ quick, sizes, machine, durationS: (Date.now() - started) / 1000, results, redisCluster }, null, 2)}\n`);
  out('');
  out(table);
  out('');
  if (redisCluster !== undefined) {
    out(formatShardTable(buildShardRows(results, redisCluster.results, redisCluster.masters)));
    out('');
  }
  const load = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' ');
  out(
    `bench: ${quick ? 'quick' : 'full'} run, ${machine.cores} cores, Node ${machine.node}, ${((Date.now() - started) / 1000).toFixed(0)} s, ` +
      `load average ${load(loadavgAtStart)} at start, ${load(machine.loadavgAtEnd)} at end; JSON in ${jsonPath}`,
  );

  const measurements = [...results, ...clusterResults].flatMap((r) => [...(r.measurement ? [r.measurement] : []), ...(r.steps ?? [])]);
  const lost = measurements.reduce((a, m) => a + Math.max(0, m.lost), 0);
  // More than expected: a message reached connections not subscribed to its channel, or twice.
  const surplus = measurements.reduce((a, m) => a + Math.max(0, m.received - m.expected), 0);
  const failed = [...results, ...clusterResults].filter((r) => r.error !== undefined);
  const left = leftovers(results);
  if (failed.length > 0) out(`bench: ${failed.length} scenario runs failed`);
  if (quick && lost > 0) out(`bench: ${lost} deliveries lost`);
  if (quick && surplus > 0) out(`bench: ${surplus} deliveries more than expected`);
  if (quick) for (const line of left) out(`bench: ${line}`);
  return failed.length > 0 || (quick && (lost > 0 || surplus > 0 || left.length > 0)) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);

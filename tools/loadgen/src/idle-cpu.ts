// `node dist/tools/loadgen/src/idle-cpu.js`: what a gateway holding many idle connections costs
// in CPU. One gateway (memory bus, then one Redis) per PING_INTERVAL_MS given, tokens required
// (every connection has a token expiry to track: half expire in two hours, half past setTimeout's
// 2^31 ms), each connection on a few channels, opened from two load processes, each from its own
// loopback source address (load.ts; a process may hold 20,000 open files). Then the gateway's CPU (utime + stime from
// /proc) over an idle window: % of one core, the busiest second, and the cost of one heartbeat
// round (the window's CPU above the same gateway's empty baseline, per interval).
//
// Flags as --name=value or --name value:
//   --connections=N      idle connections (default 10000)
//   --seconds=S          idle window (default 60); the empty baseline lasts a quarter of it
//   --ping-ms=LIST       PING_INTERVAL_MS values, one gateway each (default 25000,5000)
//   --bus=LIST           memory,redis (default both)
//   --profile=DIR        run the gateways with --cpu-prof, profiles written to DIR
//   --json=FILE          also write the results as JSON
//   --gateway=FILE       the gateway's main.js to run (default this build's; an older build, to compare)
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import { parseFlags } from '../../kit/src/flags.js';
import { type GatewayProcess, startGateway } from '../../kit/src/gateway.js';
import { type RedisHandle, startRedis, uniquePrefix } from '../../kit/src/redis.js';
import type { Layout } from './layout.js';
import { Subscribers } from './load.js';
import { cpuMicros } from './procstat.js';

const USAGE = 'usage: node dist/tools/loadgen/src/idle-cpu.js [--connections=N] [--seconds=S] [--ping-ms=25000,5000] [--bus=memory,redis] [--profile=DIR] [--json=FILE] [--gateway=FILE]';
const FLAGS = { help: 'boolean', connections: 'string', seconds: 'string', 'ping-ms': 'string', bus: 'string', profile: 'string', json: 'string', gateway: 'string' } as const;

const SECRET = 'idle-cpu-benchmark-secret-of-32-characters';
/** Each connection holds one room of ROOMS, one of its pairs, and `all`: three channels. */
const ROOMS = 8;
const LOAD_PROCESSES = 2;
/** After the last connection opened: the upgrades' garbage collected, lazily grown buffers settled. */
const SETTLE_MS = 5000;

type BusKind = 'memory' | 'redis';

interface IdleResult {
  readonly bus: BusKind;
  readonly pingIntervalMs: number;
  readonly connections: number;
  readonly windowS: number;
  /** The gateway with no connection: bus health PINGs, probes, and Node's own timers. */
  readonly baselinePercent: number;
  /** Mean over the idle window, % of one core. */
  readonly percent: number;
  /** The busiest one-second sample of the window, % of one core. */
  readonly peakSecondPercent: number;
  /** CPU of one heartbeat interval above the baseline, in ms, and per connection in µs. */
  readonly perIntervalMs: number;
  readonly perConnectionPerIntervalMicros: number;
  readonly heartbeatEvictions: number;
  /** Connections still open after the window, at the load processes and at the gateway. */
  readonly openAtLoad: number;
  readonly openAtGateway: number;
}

async function token(expSeconds: number): Promise<string> {
  return new SignJWT({ sub: 'idle', subscribe: ['*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(expSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

/** Connection j on rooms j % ROOMS and its pair, and on `all`; even j with the near token, odd with the far one. */
function idleLayout(connections: number): Layout {
  return {
    connections,
    channels: ['all'],
    fanout: connections,
    place: (j) => ({ server: j % 2, channel: `room${j % ROOMS},pair${(j % ROOMS) >> 1},all` }),
  };
}

/** CPU of `pid` over `ms`, sampled each second: the mean and the busiest second, as % of one core. */
async function sampleCpu(pid: number, ms: number): Promise<{ percent: number; peakSecondPercent: number }> {
  const start = cpuMicros(pid);
  const t0 = performance.now();
  let last = start;
  let lastAt = t0;
  let peak = 0;
  while (performance.now() - t0 < ms) {
    await sleep(Math.min(1000, ms - (performance.now() - t0)));
    const now = cpuMicros(pid);
    const at = performance.now();
    peak = Math.max(peak, (now - last) / ((at - lastAt) * 1000));
    last = now;
    lastAt = at;
  }
  return { percent: ((last - start) / ((lastAt - t0) * 1000)) * 100, peakSecondPercent: peak * 100 };
}

interface RunOptions {
  readonly connections: number;
  readonly windowMs: number;
  readonly nodeArgs: readonly string[];
  readonly script: string | undefined;
}

async function measure(bus: BusKind, redis: RedisHandle | null, pingIntervalMs: number, { connections, windowMs, nodeArgs, script }: RunOptions): Promise<IdleResult> {
  const env: Record<string, string> = {
    LOG_LEVEL: 'info', // the kit waits for the 'listening' line
    DRAIN_MS: '0',
    MAX_CONNECTIONS: String(connections + 1000),
    // 10,000 upgrades at once on a busy 2-core machine: more than the default 10 s to finish one.
    HANDSHAKE_TIMEOUT_MS: '60000',
    PING_INTERVAL_MS: String(pingIntervalMs),
    AUTH_JWT_SECRET: SECRET,
    ...(redis === null ? {} : { REDIS_URL: redis.url, REDIS_PREFIX: uniquePrefix() }),
  };
  const gateway: GatewayProcess = await startGateway(env, 30_000, script, nodeArgs);
  const subs = new Subscribers(LOAD_PROCESSES);
  try {
    await gateway.waitReady(200, 20_000);
    const pid = gateway.proc.pid!;
    await sleep(1000);
    const baseline = await sampleCpu(pid, windowMs / 4);
    const now = Math.floor(Date.now() / 1000);
    // Two hours: well past the window. Sixty days: past 2^31 ms, the longest single timer.
    const tokens = [await token(now + 2 * 3600), await token(now + 60 * 86_400)];
    const layout = idleLayout(connections);
    await subs.connect('plain', layout, (p) => `ws://127.0.0.1:${gateway.port}/ws?channels=${p.channel}&token=${tokens[p.server]}`, 50);
    await sleep(SETTLE_MS);
    const evicted = 'hubcast_clients_evicted_total{reason="heartbeat_timeout"}';
    const evicted0 = await gateway.metric(evicted);
    const idle = await sampleCpu(pid, windowMs);
    // Idle connections that answer pings must all still be open: a short interval on a busy
    // machine may miss some pongs, and the row shows it.
    const totals = await subs.totals(false);
    const openAtGateway = await gateway.metric('hubcast_connections_open');
    const intervals = windowMs / pingIntervalMs;
    const perIntervalMs = ((idle.percent - baseline.percent) / 100) * (windowMs / intervals);
    return {
      bus,
      pingIntervalMs,
      connections,
      windowS: windowMs / 1000,
      baselinePercent: baseline.percent,
      percent: idle.percent,
      peakSecondPercent: idle.peakSecondPercent,
      perIntervalMs,
      perConnectionPerIntervalMicros: (perIntervalMs * 1000) / connections,
      heartbeatEvictions: (await gateway.metric(evicted)) - evicted0,
      openAtLoad: totals.open,
      openAtGateway,
    };
  } finally {
    await subs.close();
    // SIGTERM, so a gateway run with --cpu-prof writes its profile on the way out.
    await gateway.stop('SIGTERM', 10_000);
  }
}

function format(results: readonly IdleResult[]): string {
  const head = ['bus', 'PING_INTERVAL_MS', 'connections', 'open after', 'empty %', 'idle %', 'busiest s %', 'per interval ms', 'per conn µs', 'evicted'];
  const rows = results.map((r) => [
    r.bus,
    String(r.pingIntervalMs),
    String(r.connections),
    String(Math.min(r.openAtLoad, r.openAtGateway)),
    r.baselinePercent.toFixed(2),
    r.percent.toFixed(2),
    r.peakSecondPercent.toFixed(1),
    r.perIntervalMs.toFixed(1),
    r.perConnectionPerIntervalMicros.toFixed(2),
    String(r.heartbeatEvictions),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  const parsed = parseFlags(process.argv.slice(2), FLAGS);
  if (!parsed.ok || parsed.flags.positional.length > 0) {
    process.stderr.write(`idle-cpu: ${parsed.ok ? `unexpected argument ${parsed.flags.positional[0]}` : parsed.error}\n${USAGE}\n`);
    return 2;
  }
  const flags = parsed.flags.values;
  if (flags.has('help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const arg = (name: keyof typeof FLAGS): string | undefined => {
    const value = flags.get(name);
    return typeof value === 'string' ? value : undefined;
  };
  const connections = Number(arg('connections') ?? 10_000);
  const windowMs = Number(arg('seconds') ?? 60) * 1000;
  const intervals = (arg('ping-ms') ?? '25000,5000').split(',').map(Number);
  const buses = (arg('bus') ?? 'memory,redis').split(',') as BusKind[];
  if (!(connections > 0) || !(windowMs > 0) || intervals.some((i) => !(i >= 100)) || buses.some((b) => b !== 'memory' && b !== 'redis')) {
    process.stderr.write(`idle-cpu: bad flag value\n${USAGE}\n`);
    return 2;
  }
  const profileDir = arg('profile');
  const nodeArgs = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir)}`];
  const script = arg('gateway');
  const run: RunOptions = { connections, windowMs, nodeArgs, script: script === undefined ? undefined : resolve(script) };
  const loadStart = loadavg();
  const redis = buses.includes('redis') ? await startRedis() : null;
  const results: IdleResult[] = [];
  try {
    for (const bus of buses) {
      for (const interval of intervals) {
        const result = await measure(bus, bus === 'redis' ? redis : null, interval, run);
        process.stdout.write(`idle-cpu: ${JSON.stringify(result)}\n`);
        results.push(result);
      }
    }
  } finally {
    await redis?.close();
  }
  const load = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' ');
  process.stdout.write(`\n${format(results)}\n\n`);
  process.stdout.write(
    `idle-cpu: ${availableParallelism()} cores, Node ${process.version}, load average ${load(loadStart)} at start, ${load(loadavg())} at end; ` +
      `"per interval" is the idle window's CPU above the empty gateway's, per PING_INTERVAL_MS\n`,
  );
  const json = arg('json');
  if (json !== undefined) writeFileSync(resolve(json), `${JSON.stringify({ results, loadavg: { start: loadStart, end: loadavg() } }, null, 2)}\n`);
  const lost = results.filter((r) => r.openAtLoad !== r.connections || r.openAtGateway !== r.connections);
  for (const r of lost) process.stdout.write(`idle-cpu: ${r.bus} bus, PING_INTERVAL_MS ${r.pingIntervalMs}: ${r.connections - Math.min(r.openAtLoad, r.openAtGateway)} connections closed during the run\n`);
  return lost.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`idle-cpu: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);

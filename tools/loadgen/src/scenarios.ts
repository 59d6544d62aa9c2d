// The scenarios of the benchmark, each run against one target: start the servers and the load
// processes, warm up until every connection receives, measure, stop everything.
import { setTimeout as sleep } from 'node:timers/promises';
import { machineTicks, rssBytes, sumCpuMicros } from './procstat.js';
import { Publisher, Subscribers } from './load.js';
import { type Counters, type RedisInfo, type Target, type TargetName, startTarget } from './targets.js';

export type ScenarioId = 'a' | 'b' | 'c' | 'd' | 'e';

export interface Flow {
  readonly subscribers: number;
  readonly rate: number;
  readonly durationMs: number;
  readonly size: number;
}

/** One measured publish run. */
export interface Measurement {
  readonly subscribers: number;
  readonly rate: number;
  readonly sent: number;
  readonly expected: number;
  readonly received: number;
  /** Counted as dropped by the target (null: the target keeps no such count). */
  readonly dropped: number | null;
  /** Neither received nor counted as dropped. */
  readonly lost: number;
  /** hubcast: messages its gateways took from Redis (sent × gateways when none is missing), reconnects, refused publishes. */
  readonly busMessages: number | null;
  readonly busReconnects: number | null;
  readonly publishesRejected: number | null;
  /** Connections that received nothing of this run. */
  readonly silent: number;
  readonly open: number;
  /** Connections the server closed (hubcast: evicted) since they opened. */
  readonly closed: number;
  readonly deliveriesPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly p999: number; readonly max: number };
  /** Server CPU (servers and Redis) per delivery, in µs. */
  readonly cpuMicrosPerDelivery: number;
  /** The same without Redis. */
  readonly gatewayCpuMicrosPerDelivery: number;
  /** CPU of the load processes (subscribers and publisher), as a share of one core. */
  readonly loadCpuCores: number;
  /** The whole machine (every process, anyone's), as a share of all cores. */
  readonly machineBusy: number;
}

export interface ScenarioResult {
  readonly scenario: ScenarioId;
  readonly target: TargetName;
  readonly servers: number;
  readonly measurement?: Measurement;
  /** (c) resident memory per idle connection, in bytes. */
  readonly rssPerConnection?: number;
  readonly connections?: number;
  /** (d) every step tried, and the best delivery rate that met the bar. */
  readonly steps?: readonly Measurement[];
  readonly bestDeliveriesPerSecond?: number;
  /** (a), (b) run several times: each run's server CPU per delivery (µs) and p99 (ms); `measurement` is the median-CPU run. */
  readonly runs?: readonly { readonly cpu: number; readonly p99: number }[];
  readonly error?: string;
}

export interface Sizes {
  readonly a: Flow;
  readonly b: Flow;
  readonly c: { readonly connections: number };
  readonly d: { readonly subscribers: number; readonly startRate: number; readonly factor: number; readonly steps: number; readonly durationMs: number; readonly p99Ms: number };
  readonly e: Flow & { readonly processes: number };
  readonly gateways: number;
  readonly subscriberProcesses: number;
}

interface Rig {
  readonly target: Target;
  readonly subs: Subscribers;
  readonly pub: Publisher;
}

let nextRun = 1;
/** Settle: no new deliveries for this long after the last publish means the rest are not coming. */
const QUIET_MS = 5000;
const SETTLE_LIMIT_MS = 30_000;

async function withRig<T>(
  name: TargetName,
  servers: number,
  redis: RedisInfo,
  nodeArgs: readonly string[] | undefined,
  subscribers: number,
  processes: number,
  body: (rig: Rig) => Promise<T>,
): Promise<T> {
  const target = await startTarget(name, { servers, redis, nodeArgs });
  const subs = new Subscribers(processes);
  const pub = new Publisher();
  try {
    await subs.connect(target.dialect, target.subscriberUrls, subscribers);
    await pub.connect(target.publisherDialect, target.publisherUrls);
    return await body({ target, subs, pub });
  } finally {
    await Promise.all([subs.close(), pub.close()]);
    await target.stop();
  }
}

/**
 * Publishes a few messages, then waits until all of them arrived, until every connection has
 * received something: subscriptions are live end to end and no backlog is left for the measurement.
 */
async function warmUp(rig: Rig, subscribers: number): Promise<void> {
  await rig.subs.run(nextRun);
  const run = nextRun++;
  const deadline = Date.now() + 120_000;
  let sent = 0;
  for (;;) {
    sent += (await rig.pub.publish(run, 20, 250, 64)).sent;
    let totals = await rig.subs.totals(false);
    const waitUntil = Date.now() + 20_000;
    while (totals.received < sent * subscribers && Date.now() < waitUntil) {
      await sleep(100);
      totals = await rig.subs.totals(false);
    }
    if (totals.silent === 0 && totals.received >= sent * subscribers) return;
    if (Date.now() > deadline) {
      throw new Error(`warm-up: ${totals.silent} connections never received a message; ${totals.received} of ${sent * subscribers} arrived`);
    }
  }
}

async function measure(rig: Rig, flow: Flow): Promise<Measurement> {
  const { target, subs, pub } = rig;
  const run = nextRun++;
  await subs.run(run);
  const loadPids = [...subs.pids, pub.pid];
  const counters0 = await target.counters();
  const cpu0 = sumCpuMicros(target.serverPids);
  const gw0 = sumCpuMicros(target.gatewayPids);
  const load0 = sumCpuMicros(loadPids);
  const machine0 = machineTicks();
  const t0 = performance.now();
  const { sent } = await pub.publish(run, flow.rate, flow.durationMs, flow.size);
  const expected = sent * flow.subscribers;
  // Wait until everything arrived, or nothing more arrives for QUIET_MS.
  let received = 0;
  let lastChange = performance.now();
  const settleDeadline = performance.now() + SETTLE_LIMIT_MS;
  for (;;) {
    const totals = await subs.totals(false);
    if (totals.received !== received) lastChange = performance.now();
    received = totals.received;
    if (received >= expected || performance.now() - lastChange > QUIET_MS || performance.now() > settleDeadline) break;
    await sleep(50);
  }
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = sumCpuMicros(target.serverPids) - cpu0;
  const gw = sumCpuMicros(target.gatewayPids) - gw0;
  const load = sumCpuMicros(loadPids) - load0;
  const machine1 = machineTicks();
  const totals = await subs.totals(true);
  const counters1 = await target.counters();
  const delta = (k: keyof Counters): number | null => (counters0 === null || counters1 === null ? null : counters1[k] - counters0[k]);
  const dropped = delta('dropped');
  const h = totals.histogram!;
  const ms = (us: number): number => us / 1000;
  const result: Measurement = {
    subscribers: flow.subscribers,
    rate: flow.rate,
    sent,
    expected,
    received: totals.received,
    dropped,
    // A publish the gateway refused (and counted) would have been one delivery per subscriber.
    lost: expected - totals.received - (dropped ?? 0) - (delta('publishesRejected') ?? 0) * flow.subscribers,
    busMessages: delta('busMessages'),
    busReconnects: delta('busReconnects'),
    publishesRejected: delta('publishesRejected'),
    silent: totals.silent,
    open: totals.open,
    closed: totals.closed,
    deliveriesPerSecond: totals.received / (flow.durationMs / 1000),
    latencyMs: {
      p50: ms(h.getValueAtPercentile(50)),
      p99: ms(h.getValueAtPercentile(99)),
      p999: ms(h.getValueAtPercentile(99.9)),
      max: ms(h.maxValue),
    },
    cpuMicrosPerDelivery: cpu / Math.max(1, totals.received),
    gatewayCpuMicrosPerDelivery: gw / Math.max(1, totals.received),
    loadCpuCores: load / 1_000_000 / elapsedS,
    machineBusy: (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total),
  };
  h.destroy();
  return result;
}

export interface RunContext {
  readonly redis: RedisInfo;
  readonly sizes: Sizes;
  readonly nodeArgs?: readonly string[];
}

async function flowScenario(ctx: RunContext, scenario: 'a' | 'b', name: TargetName): Promise<ScenarioResult> {
  const flow = ctx.sizes[scenario];
  const servers = name === 'ws' ? 1 : ctx.sizes.gateways;
  return withRig(name, servers, ctx.redis, ctx.nodeArgs, flow.subscribers, ctx.sizes.subscriberProcesses, async (rig) => {
    await warmUp(rig, flow.subscribers);
    return { scenario, target: name, servers, measurement: await measure(rig, flow) };
  });
}

/** (c) Idle connections on one server: resident memory grown per connection. */
async function idleMemory(ctx: RunContext, name: TargetName): Promise<ScenarioResult> {
  const connections = ctx.sizes.c.connections;
  const target = await startTarget(name, { servers: 1, redis: ctx.redis, nodeArgs: ctx.nodeArgs });
  const subs = new Subscribers(ctx.sizes.subscriberProcesses);
  try {
    const pid = target.gatewayPids[0]!;
    await sleep(1000);
    const before = rssBytes(pid);
    await subs.connect(target.dialect, target.subscriberUrls, connections);
    await sleep(2000); // let the server settle (timers, lazily grown buffers)
    const after = rssBytes(pid);
    const totals = await subs.totals(false);
    if (totals.open !== connections) throw new Error(`${totals.open} of ${connections} connections open`);
    return { scenario: 'c', target: name, servers: 1, connections, rssPerConnection: (after - before) / connections };
  } finally {
    await subs.close();
    await target.stop();
  }
}

/** (d) Raises the rate step by step; the best delivery rate with p99 under the bar and nothing dropped or lost. */
async function highestRate(ctx: RunContext, name: TargetName): Promise<ScenarioResult> {
  const d = ctx.sizes.d;
  const servers = name === 'ws' ? 1 : ctx.sizes.gateways;
  return withRig(name, servers, ctx.redis, ctx.nodeArgs, d.subscribers, ctx.sizes.subscriberProcesses, async (rig) => {
    await warmUp(rig, d.subscribers);
    const steps: Measurement[] = [];
    let best = 0;
    let rate = d.startRate;
    const passes = (m: Measurement): boolean =>
      m.latencyMs.p99 < d.p99Ms && (m.dropped ?? 0) === 0 && (m.publishesRejected ?? 0) === 0 && m.lost === 0;
    for (let i = 0; i < d.steps; i++) {
      const flow = { subscribers: d.subscribers, rate: Math.round(rate), durationMs: d.durationMs, size: 64 };
      let m = await measure(rig, flow);
      steps.push(m);
      // A step is short, so one stall of a shared machine can decide its p99: a failed step gets one more try.
      if (!passes(m)) {
        m = await measure(rig, flow);
        steps.push(m);
      }
      if (!passes(m)) break;
      best = Math.max(best, m.deliveriesPerSecond);
      rate *= d.factor;
    }
    return { scenario: 'd', target: name, servers, steps, bestDeliveriesPerSecond: best };
  });
}

/** (e) Many connections across the servers, every one receiving every broadcast. */
async function manyConnections(ctx: RunContext, name: TargetName): Promise<ScenarioResult> {
  const e = ctx.sizes.e;
  // The ceiling is one process elsewhere; here one process cannot hold the sockets (RLIMIT_NOFILE), so it runs as G.
  const servers = ctx.sizes.gateways;
  return withRig(name, servers, ctx.redis, ctx.nodeArgs, e.subscribers, e.processes, async (rig) => {
    await warmUp(rig, e.subscribers);
    return { scenario: 'e', target: name, servers, connections: e.subscribers, measurement: await measure(rig, e) };
  });
}

export async function runScenario(ctx: RunContext, scenario: ScenarioId, name: TargetName): Promise<ScenarioResult> {
  try {
    switch (scenario) {
      case 'a':
      case 'b':
        return await flowScenario(ctx, scenario, name);
      case 'c':
        return await idleMemory(ctx, name);
      case 'd':
        return await highestRate(ctx, name);
      case 'e':
        return await manyConnections(ctx, name);
    }
  } catch (err) {
    return { scenario, target: name, servers: 0, error: (err as Error).message };
  }
}

// The scenarios of the benchmark, each run against one target: start the servers and the load
// processes, warm up until every connection receives, measure, stop everything.
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChurnFigures, churn } from './churn.js';
import { broadcastLayout, roomsLayout } from './layout.js';
import { Subscribers } from './load.js';
import { rssBytes, sumRssBytes } from './procstat.js';
import { type Flow, type Measurement, type RigOptions, measure, warmUp, withRig } from './rig.js';
import { type RedisInfo, type TargetName, startTarget } from './targets.js';

export type ScenarioId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'g' | 'h' | 'i';
export const SCENARIOS: readonly ScenarioId[] = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];

export interface ScenarioResult {
  readonly scenario: ScenarioId;
  readonly target: TargetName;
  readonly servers: number;
  readonly measurement?: Measurement;
  /** (c), (i) resident memory per idle connection, in bytes (summed over the servers). */
  readonly rssPerConnection?: number;
  readonly connections?: number;
  /** (d) every step tried, and the best delivery rate that met the bar. */
  readonly steps?: readonly Measurement[];
  readonly bestDeliveriesPerSecond?: number;
  /** (h) the churn's figures. */
  readonly churn?: ChurnFigures;
  /** (a), (b), (f), (g) run several times: each run's server CPU per delivery (µs) and p99 (ms); `measurement` is the median-CPU run. */
  readonly runs?: readonly { readonly cpu: number; readonly p99: number }[];
  readonly error?: string;
}

export interface Sizes {
  readonly a: Flow;
  readonly b: Flow;
  readonly c: { readonly connections: number };
  readonly d: { readonly subscribers: number; readonly startRate: number; readonly factor: number; readonly steps: number; readonly durationMs: number; readonly p99Ms: number };
  readonly e: Flow & { readonly processes: number };
  /** (f) rooms (perChannel = one member per gateway) and (g) sparse (perChannel 1): publishes spread over the channels. */
  readonly f: Flow & { readonly perChannel: number };
  readonly g: Flow & { readonly perChannel: number };
  /** (h) connections opened and closed `batch` at a time, each on a channel of its own; settleMs before the memory baseline. */
  readonly h: { readonly connections: number; readonly batch: number; readonly processes: number; readonly settleMs: number };
  /** (i) idle connections over their own number of gateways, then a broadcast to all; settleMs before each memory reading. */
  readonly i: Flow & { readonly gateways: number; readonly processes: number; readonly settleMs: number };
  readonly gateways: number;
  readonly subscriberProcesses: number;
}

export interface RunContext {
  readonly redis: RedisInfo;
  readonly sizes: Sizes;
  readonly nodeArgs?: readonly string[];
}

function rigOptions(ctx: RunContext, name: TargetName, servers: number, processes = ctx.sizes.subscriberProcesses): RigOptions {
  return { name, servers, redis: ctx.redis, nodeArgs: ctx.nodeArgs, processes };
}

/** (a), (b) one channel; (f), (g) many channels, the ceiling coalescing per turn as a gateway does. */
async function flowScenario(ctx: RunContext, scenario: 'a' | 'b' | 'f' | 'g', name: TargetName): Promise<ScenarioResult> {
  const servers = name === 'ws' ? 1 : ctx.sizes.gateways;
  if (scenario === 'a' || scenario === 'b') {
    const flow = ctx.sizes[scenario];
    return withRig(rigOptions(ctx, name, servers), broadcastLayout(flow.subscribers, servers), async (rig) => {
      await warmUp(rig);
      return { scenario, target: name, servers, measurement: await measure(rig, flow) };
    });
  }
  const flow = ctx.sizes[scenario];
  const options = { ...rigOptions(ctx, name, servers), coalesce: true };
  return withRig(options, roomsLayout(flow.subscribers, flow.perChannel, servers), async (rig) => {
    await warmUp(rig, flow.rate);
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
    await subs.connect(target.dialect, broadcastLayout(connections, 1), (p) => target.subscribeUrl(p.server, p.channel));
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
  return withRig(rigOptions(ctx, name, servers), broadcastLayout(d.subscribers, servers), async (rig) => {
    await warmUp(rig);
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
  return withRig(rigOptions(ctx, name, servers, e.processes), broadcastLayout(e.subscribers, servers), async (rig) => {
    await warmUp(rig);
    return { scenario: 'e', target: name, servers, connections: e.subscribers, measurement: await measure(rig, e) };
  });
}

/**
 * (i) More idle connections than one process may hold (RLIMIT_NOFILE 20,000 on these machines,
 * not raisable): spread over i.gateways servers (every target, the ceiling too) and i.processes
 * load processes, each with its own source address. Resident memory of the servers before and
 * after they opened, then a broadcast that every one must receive.
 */
async function idleMany(ctx: RunContext, name: TargetName): Promise<ScenarioResult> {
  const i = ctx.sizes.i;
  let before = 0;
  const options: RigOptions = {
    ...rigOptions(ctx, name, i.gateways, i.processes),
    coalesce: true,
    beforeConnect: async (target) => {
      await sleep(i.settleMs);
      before = sumRssBytes(target.gatewayPids);
    },
  };
  return withRig(options, broadcastLayout(i.subscribers, i.gateways), async (rig) => {
    await sleep(i.settleMs); // let the servers settle (timers, lazily grown buffers)
    const rssPerConnection = (sumRssBytes(rig.target.gatewayPids) - before) / i.subscribers;
    await warmUp(rig);
    return { scenario: 'i', target: name, servers: i.gateways, connections: i.subscribers, rssPerConnection, measurement: await measure(rig, i) };
  });
}

export async function runScenario(ctx: RunContext, scenario: ScenarioId, name: TargetName): Promise<ScenarioResult> {
  try {
    switch (scenario) {
      case 'a':
      case 'b':
      case 'f':
      case 'g':
        return await flowScenario(ctx, scenario, name);
      case 'c':
        return await idleMemory(ctx, name);
      case 'd':
        return await highestRate(ctx, name);
      case 'e':
        return await manyConnections(ctx, name);
      case 'h': {
        const servers = name === 'ws' ? 1 : ctx.sizes.gateways;
        const figures = await churn({ name, servers, redis: ctx.redis, nodeArgs: ctx.nodeArgs }, ctx.sizes.h);
        return { scenario, target: name, servers, connections: figures.connections, churn: figures };
      }
      case 'i':
        return await idleMany(ctx, name);
    }
  } catch (err) {
    return { scenario, target: name, servers: 0, error: (err as Error).message };
  }
}

// The measuring rig every publish scenario shares: start a target's servers, open the layout's
// connections and the publisher, warm up until every connection receives, measure one
// open-loop publish run, stop everything.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Layout } from './layout.js';
import { Publisher, Subscribers } from './load.js';
import { machineTicks, sumCpuMicros } from './procstat.js';
import { type Counters, type RedisInfo, type Target, type TargetName, startTarget } from './targets.js';

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

export interface Rig {
  readonly target: Target;
  readonly subs: Subscribers;
  readonly pub: Publisher;
  readonly layout: Layout;
}

export interface RigOptions {
  readonly name: TargetName;
  readonly servers: number;
  readonly redis: RedisInfo;
  readonly nodeArgs: readonly string[] | undefined;
  /** Subscriber load processes. */
  readonly processes: number;
  /** The ceiling coalesces per turn (the many-channel scenarios). */
  readonly coalesce?: boolean;
  /** Runs once the servers are up, before any connection opens (a memory baseline). */
  readonly beforeConnect?: (target: Target) => Promise<void>;
}

let nextRun = 1;
/** Settle: no new deliveries for this long after the last publish means the rest are not coming. */
const QUIET_MS = 5000;
const SETTLE_LIMIT_MS = 30_000;

export async function withRig<T>(options: RigOptions, layout: Layout, body: (rig: Rig) => Promise<T>): Promise<T> {
  const { name, servers, redis, nodeArgs, coalesce } = options;
  const target = await startTarget(name, { servers, redis, nodeArgs, coalesce });
  const subs = new Subscribers(options.processes);
  const pub = new Publisher();
  try {
    await options.beforeConnect?.(target);
    await subs.connect(target.dialect, layout, (p) => target.subscribeUrl(p.server, p.channel));
    await pub.connect(target.publisherDialect, target.publisherUrls);
    return await body({ target, subs, pub, layout });
  } finally {
    await Promise.all([subs.close(), pub.close()]);
    await target.stop();
  }
}

/**
 * Publishes a few messages (one to every channel at least), then waits until all of them arrived,
 * until every connection has received something: subscriptions are live end to end and no backlog
 * is left for the measurement. One channel: 5 messages at 20/s; many: one each at `rate`.
 */
export async function warmUp(rig: Rig, rate = 20): Promise<void> {
  const { channels, fanout } = rig.layout;
  const count = Math.max(5, channels.length);
  const warmRate = channels.length === 1 ? 20 : rate;
  await rig.subs.run(nextRun);
  const run = nextRun++;
  const deadline = Date.now() + 120_000;
  let sent = 0;
  for (;;) {
    sent += (await rig.pub.publish(run, warmRate, (count * 1000) / warmRate, 64, channels)).sent;
    let totals = await rig.subs.totals(false);
    const waitUntil = Date.now() + 20_000;
    while (totals.received < sent * fanout && Date.now() < waitUntil) {
      await sleep(100);
      totals = await rig.subs.totals(false);
    }
    if (totals.silent === 0 && totals.received >= sent * fanout) return;
    if (Date.now() > deadline) {
      throw new Error(`warm-up: ${totals.silent} connections never received a message; ${totals.received} of ${sent * fanout} arrived`);
    }
  }
}

/** One open-loop publish run of `flow`, spread over the layout's channels. */
export async function measure(rig: Rig, flow: Flow): Promise<Measurement> {
  const { target, subs, pub, layout } = rig;
  const run = nextRun++;
  await subs.run(run);
  const loadPids = [...subs.pids, pub.pid];
  const counters0 = await target.counters();
  const cpu0 = sumCpuMicros(target.serverPids);
  const gw0 = sumCpuMicros(target.gatewayPids);
  const load0 = sumCpuMicros(loadPids);
  const machine0 = machineTicks();
  const t0 = performance.now();
  const { sent } = await pub.publish(run, flow.rate, flow.durationMs, flow.size, layout.channels);
  const expected = sent * layout.fanout;
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
    // A publish the gateway refused (and counted) would have been `fanout` deliveries.
    lost: expected - totals.received - (dropped ?? 0) - (delta('publishesRejected') ?? 0) * layout.fanout,
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


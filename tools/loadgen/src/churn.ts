// (h) Connection churn: connections opened and closed `batch` at a time, each subscribed to a
// channel of its own, in two halves. Figures: connects per second and server CPU per connection;
// afterwards what the servers left behind: Redis channels on the target's prefix beyond those it
// held before, subscribers still counted on the churned channels (PUBSUB NUMSUB), connections
// still counted open, and resident memory before, between the halves and after (growth that
// continues into the second half is a leak; growth in the first half is warm-up).
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { type Layout, roomsLayout } from './layout.js';
import { Subscribers } from './load.js';
import { sumCpuMicros, sumRssBytes } from './procstat.js';
import { type RedisInfo, type Target, type TargetName, startTarget } from './targets.js';

export interface ChurnSizes {
  readonly connections: number;
  /** Connections open at once, over all load processes. */
  readonly batch: number;
  readonly processes: number;
  /** Wait before the memory baseline. */
  readonly settleMs: number;
}

export interface ChurnFigures {
  readonly connections: number;
  readonly connectsPerSecond: number;
  /** Server CPU (servers and Redis) per connection opened and closed, in µs. */
  readonly cpuMicrosPerConnection: number;
  /** VmRSS summed over the servers: before, after the first half, after the second. */
  readonly rssBytes: { readonly before: number; readonly mid: number; readonly after: number };
  /** Redis channels on the target's prefix that were not there before the churn; null without Redis. */
  readonly channelsLeft: number | null;
  /** Subscribers Redis still counts on the churned channels; null without Redis. */
  readonly subscribersLeft: number | null;
  /** Connections the servers still count as open once the churn is over. */
  readonly connectionsAfter: number;
}

/** How long the servers get to finish closing and unsubscribing before what is left counts. */
const CLEANUP_LIMIT_MS = 10_000;

interface ChurnTarget {
  readonly name: TargetName;
  readonly servers: number;
  readonly redis: RedisInfo;
  readonly nodeArgs: readonly string[] | undefined;
}

async function prefixChannels(redis: Redis, target: Target): Promise<Set<string>> {
  if (target.redisPrefix === null) return new Set();
  return new Set((await redis.pubsub('CHANNELS', `${target.redisPrefix}*`)) as string[]);
}

async function numsub(redis: Redis, prefix: string, channels: readonly string[]): Promise<number> {
  let total = 0;
  for (let i = 0; i < channels.length; i += 1000) {
    const reply = (await redis.pubsub('NUMSUB', ...channels.slice(i, i + 1000).map((c) => prefix + c))) as (string | number)[];
    for (let k = 1; k < reply.length; k += 2) total += Number(reply[k]);
  }
  return total;
}

/** Waits (within CLEANUP_LIMIT_MS) until the servers count no connection and Redis holds no new channel; returns what is left. */
async function leftBehind(redis: Redis, target: Target, baseline: Set<string>): Promise<{ open: number; channels: number }> {
  const deadline = Date.now() + CLEANUP_LIMIT_MS;
  for (;;) {
    const open = await target.connectionsOpen();
    const channels = [...(await prefixChannels(redis, target))].filter((c) => !baseline.has(c)).length;
    if ((open === 0 && channels === 0) || Date.now() > deadline) return { open, channels };
    await sleep(100);
  }
}

function half(layout: Layout, from: number, to: number): Layout {
  return { connections: to - from, channels: layout.channels.slice(from, to), fanout: 1, place: (j) => layout.place(from + j) };
}

export async function churn(options: ChurnTarget, sizes: ChurnSizes): Promise<ChurnFigures> {
  const target = await startTarget(options.name, { servers: options.servers, redis: options.redis, nodeArgs: options.nodeArgs, coalesce: true });
  const subs = new Subscribers(sizes.processes);
  const redis = new Redis(options.redis.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined); // a command fails on its own; the connection retries
  try {
    const layout = roomsLayout(sizes.connections, 1, options.servers);
    const midpoint = Math.floor(sizes.connections / 2);
    const halves = [half(layout, 0, midpoint), half(layout, midpoint, sizes.connections)];
    const urlOf = (p: { server: number; channel: string }): string => target.subscribeUrl(p.server, p.channel);
    await sleep(sizes.settleMs);
    const baseline = await prefixChannels(redis, target);
    const rss = [sumRssBytes(target.gatewayPids)];
    let cpu = 0;
    let elapsedMs = 0;
    let left = { open: 0, channels: 0 };
    for (const part of halves) {
      const cpu0 = sumCpuMicros(target.serverPids);
      const t0 = performance.now();
      await subs.churn(target.dialect, part, urlOf, sizes.batch);
      elapsedMs += performance.now() - t0;
      cpu += sumCpuMicros(target.serverPids) - cpu0;
      left = await leftBehind(redis, target, baseline);
      rss.push(sumRssBytes(target.gatewayPids));
    }
    return {
      connections: sizes.connections,
      connectsPerSecond: sizes.connections / (elapsedMs / 1000),
      cpuMicrosPerConnection: cpu / sizes.connections,
      rssBytes: { before: rss[0]!, mid: rss[1]!, after: rss[2]! },
      channelsLeft: target.redisPrefix === null ? null : left.channels,
      subscribersLeft: target.redisPrefix === null ? null : await numsub(redis, target.redisPrefix, layout.channels),
      connectionsAfter: left.open,
    };
  } finally {
    redis.disconnect();
    await subs.close();
    await target.stop();
  }
}

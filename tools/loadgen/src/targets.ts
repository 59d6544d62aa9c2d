// The systems under test, each started as real server processes on free loopback ports: hubcast
// (G gateways over Redis, history at its default), the same with history off (HISTORY_SIZE=0, to
// show what history costs), Socket.IO 4 with the Redis adapter (G servers over the same Redis),
// and the bare ws ceiling (one process; no Redis).
import { fileURLToPath } from 'node:url';
import { type GatewayProcess, startGateway } from '../../kit/src/gateway.js';
import { uniquePrefix } from '../../kit/src/redis.js';
import type { Dialect, PublisherDialect } from './ipc.js';

export type TargetName = 'hubcast' | 'hubcast-nohistory' | 'socketio' | 'ws';
export const TARGETS: readonly TargetName[] = ['hubcast', 'hubcast-nohistory', 'socketio', 'ws'];
export const TARGET_LABEL: Record<TargetName, string> = {
  hubcast: 'hubcast',
  'hubcast-nohistory': 'hubcast, history off',
  socketio: 'Socket.IO',
  ws: 'ws ceiling',
};
/** The history-off variant runs only where the issue compares history on against off: (a) and (b). */
export const HISTORY_OFF_SCENARIOS: readonly string[] = ['a', 'b'];

const SOCKETIO = fileURLToPath(new URL('./servers/socketio.js', import.meta.url));
const CEILING = fileURLToPath(new URL('./servers/ws-ceiling.js', import.meta.url));

/** One master of a Redis Cluster: its port, process (for its CPU) and slot ranges. */
export interface RedisShard {
  readonly port: number;
  readonly pid: number;
  readonly slots: string;
}

/** One Redis, or a Redis Cluster (hubcast only: its gateways get REDIS_CLUSTER_NODES). */
export type RedisInfo =
  | { readonly kind: 'single'; readonly url: string; readonly pid: number | undefined }
  | { readonly kind: 'cluster'; readonly seedList: string; readonly masters: readonly RedisShard[] };

/** The one Redis's URL; `who` (Socket.IO's adapter, the churn's checks) has no Redis Cluster variant here. */
export function singleRedisUrl(redis: RedisInfo, who: string): string {
  if (redis.kind === 'cluster') throw new Error(`${who} runs on one Redis only, not on a Redis Cluster`);
  return redis.url;
}

/** The Redis processes whose CPU counts: the one Redis, or each master (replicas only copy). */
export function redisPidsOf(redis: RedisInfo): number[] {
  if (redis.kind === 'cluster') return redis.masters.map((m) => m.pid);
  return redis.pid === undefined ? [] : [redis.pid];
}

export interface Target {
  readonly name: TargetName;
  readonly servers: readonly GatewayProcess[];
  /** Every server-side process whose CPU counts: the servers, and Redis when the target uses it. */
  readonly serverPids: readonly number[];
  /** The same without Redis. */
  readonly gatewayPids: readonly number[];
  /** The Redis processes alone (each master on a Redis Cluster); empty without Redis. */
  readonly redisPids: readonly number[];
  readonly dialect: Dialect;
  /** The URL a subscriber opens on server `server` to receive channel `channel`. */
  subscribeUrl(server: number, channel: string): string;
  readonly publisherDialect: PublisherDialect;
  readonly publisherUrls: readonly string[];
  /** hubcast's own counts, summed over its gateways; null where the target keeps none. */
  counters(): Promise<Counters | null>;
  /** Connections the servers hold now (hubcast: `hubcast_connections_open`; the others: their /stats). */
  connectionsOpen(): Promise<number>;
  /** The prefix of every Redis channel the target uses; null without Redis. */
  readonly redisPrefix: string | null;
  stop(): Promise<void>;
}

export interface TargetOptions {
  /** Server processes (the ceiling is one process unless fd limits force more). */
  readonly servers: number;
  readonly redis: RedisInfo;
  /** Extra node arguments for the server processes (--cpu-prof for profiling). */
  readonly nodeArgs?: readonly string[];
  /** The ceiling coalesces each turn's frames per socket, as a gateway does (the many-channel scenarios). */
  readonly coalesce?: boolean;
}

async function startAll(count: number, env: Record<string, string>, nodeArgs: readonly string[], script?: string): Promise<GatewayProcess[]> {
  const started = await Promise.allSettled(Array.from({ length: count }, () => startGateway(env, 30_000, script, nodeArgs)));
  const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(ok.map((s) => s.kill()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return ok;
}

export interface Counters {
  /** Deliveries dropped for a client, and publishes refused (each would have been N deliveries). */
  readonly dropped: number;
  readonly publishesRejected: number;
  /** Messages the gateways received from the bus (each fans out once). */
  readonly busMessages: number;
  readonly deliveries: number;
  readonly busReconnects: number;
}

async function sumCounters(servers: readonly GatewayProcess[]): Promise<Counters> {
  const sums = { dropped: 0, publishesRejected: 0, busMessages: 0, deliveries: 0, busReconnects: 0 };
  const names: [string, keyof typeof sums][] = [
    ['hubcast_messages_dropped_total', 'dropped'],
    ['hubcast_publishes_rejected_total', 'publishesRejected'],
    ['hubcast_bus_messages_received_total', 'busMessages'],
    ['hubcast_deliveries_total', 'deliveries'],
    ['hubcast_bus_reconnects_total', 'busReconnects'],
  ];
  for (const server of servers) {
    for (const [series, value] of await server.metrics()) {
      for (const [name, key] of names) if (series === name || series.startsWith(`${name}{`)) sums[key] += value;
    }
  }
  return sums;
}

async function statsConnections(servers: readonly GatewayProcess[]): Promise<number> {
  let total = 0;
  for (const server of servers) total += ((await (await fetch(`${server.http}/stats`)).json()) as { connections: number }).connections;
  return total;
}

async function gaugeConnections(servers: readonly GatewayProcess[]): Promise<number> {
  let total = 0;
  for (const server of servers) total += await server.metric('hubcast_connections_open');
  return total;
}

export async function startTarget(name: TargetName, options: TargetOptions): Promise<Target> {
  const { redis } = options;
  const args = options.nodeArgs ?? [];
  const redisPids = redisPidsOf(redis);
  let servers: GatewayProcess[];
  let target: Omit<Target, 'servers' | 'serverPids' | 'gatewayPids' | 'redisPids' | 'stop'>;
  switch (name) {
    case 'hubcast':
    case 'hubcast-nohistory': {
      // (e) puts 10,000 subscribers plus the publisher on one gateway: above the default MAX_CONNECTIONS.
      // The one publisher connection stands for many publishing clients: (f) and (g) send 3,000/s
      // on it, above the default per-client rate limit.
      const prefix = uniquePrefix();
      // hubcast keeps HISTORY_SIZE at its default (history on): the targets are judged on it.
      const env: Record<string, string> = {
        ...(redis.kind === 'single' ? { REDIS_URL: redis.url } : { REDIS_CLUSTER_NODES: redis.seedList }),
        REDIS_PREFIX: prefix,
        LOG_LEVEL: 'info',
        DRAIN_MS: '0',
        MAX_CONNECTIONS: '50000',
        RATE_LIMIT_PER_SEC: '1000000',
        RATE_LIMIT_BURST: '1000000',
      };
      if (name === 'hubcast-nohistory') env.HISTORY_SIZE = '0';
      servers = await startAll(options.servers, env, args);
      target = {
        name,
        dialect: 'plain',
        subscribeUrl: (i, channel) => `ws://127.0.0.1:${servers[i]!.port}/ws?channels=${channel}`,
        publisherDialect: 'hubcast',
        publisherUrls: [`ws://127.0.0.1:${servers[0]!.port}/ws`],
        counters: () => sumCounters(servers),
        connectionsOpen: () => gaugeConnections(servers),
        redisPrefix: prefix,
      };
      break;
    }
    case 'socketio': {
      const prefix = uniquePrefix();
      servers = await startAll(options.servers, { REDIS_URL: singleRedisUrl(redis, 'Socket.IO'), REDIS_PREFIX: prefix }, args, SOCKETIO);
      target = {
        name,
        dialect: 'socketio',
        subscribeUrl: (i, room) => `ws://127.0.0.1:${servers[i]!.port}/socket.io/?EIO=4&transport=websocket&room=${room}`,
        publisherDialect: 'socketio',
        publisherUrls: [`http://127.0.0.1:${servers[0]!.port}`],
        counters: async () => null,
        connectionsOpen: () => statsConnections(servers),
        redisPrefix: prefix,
      };
      break;
    }
    case 'ws': {
      servers = await startAll(options.servers, options.coalesce ? { COALESCE: '1' } : {}, args, CEILING);
      target = {
        name,
        dialect: 'plain',
        subscribeUrl: (i, channel) => `ws://127.0.0.1:${servers[i]!.port}/sub?channel=${channel}`,
        publisherDialect: 'ws',
        // With more than one ceiling process, the publisher sends each message to every one.
        publisherUrls: servers.map((s) => `ws://127.0.0.1:${s.port}/pub`),
        counters: async () => null,
        connectionsOpen: () => statsConnections(servers),
        redisPrefix: null,
      };
      break;
    }
  }
  const gatewayPids = servers.map((s) => s.proc.pid!);
  return {
    ...target,
    servers,
    gatewayPids,
    redisPids: name === 'ws' ? [] : redisPids,
    serverPids: name === 'ws' ? gatewayPids : [...gatewayPids, ...redisPids],
    // SIGTERM, so a server run with --cpu-prof writes its profile on the way out.
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop('SIGTERM', 10_000)));
    },
  };
}

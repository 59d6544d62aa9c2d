// Prometheus metrics as a table: one line per metric naming its source, help and label set.
// Counters live in Stats as plain numbers and are copied in at scrape time, so the hot path never
// calls prom-client. Every label value comes from a server-chosen set (codes.ts), never from client
// input; help texts list those sets from the same enums, so they cannot drift.
import { Counter, Gauge, Histogram, type Metric, Registry, collectDefaultMetrics } from 'prom-client';
import { Buckets } from './buckets.js';
import type { Bus } from './bus/bus.js';
import {
  type BusConnection,
  Disconnect,
  DropReason,
  ErrorCode,
  EvictReason,
  HistoryReadPurpose,
  PUBLISH_SOURCES,
  PolicyCloseReason,
  PublishRejectReason,
  RecoveryResult,
  UpgradeRejectReason,
} from './codes.js';
import type { Stats } from './stats.js';

export interface MetricsSources {
  readonly stats: Stats;
  readonly busKind: Bus['kind'];
  isReady(): boolean;
  channelCount(): number;
  subscriptionCount(): number;
}

export interface Metrics {
  readonly registry: Registry;
  observeFanout(seconds: number): void;
  observeHistoryRead(purpose: HistoryReadPurpose, seconds: number): void;
}

/** A reading: one number, or one per value of the next label (nested in label order). */
export type Reading = number | { readonly [value: string]: Reading | undefined };

export interface Label {
  readonly name: string;
  /** Every value the label can take. */
  readonly values: readonly string[];
}

export interface MetricSpec {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly help: string;
  readonly labels: readonly Label[];
  /** The value at scrape time; a label value whose reading is undefined is not exported. A histogram is observed instead. */
  readonly read?: (sources: MetricsSources) => Reading;
  readonly buckets?: readonly number[];
}

// Label sets that are types in codes.ts; `satisfies` keeps each list complete.
const BUS_CONNECTIONS = Object.keys({ publisher: 0, subscriber: 0 } satisfies Record<BusConnection, 0>);
const BUS_KINDS = Object.keys({ memory: 0, redis: 0, redis_cluster: 0 } satisfies Record<Bus['kind'], 0>);

const label = (name: string, set: Readonly<Record<string, string>> | readonly string[]): Label => ({
  name,
  values: Array.isArray(set) ? set : Object.values(set),
});
const reason = (set: Readonly<Record<string, string>>): Label => label('reason', set);
/** The values of a label set, as help texts list them. */
const list = (l: Label): string => l.values.join(', ');
/** Policy close reasons with the close code their Disconnect entry sends: `rate_limited: 1008, ...`. */
const policyCloses = (l: Label): string =>
  l.values
    .map((r) => {
      const entry = Object.values(Disconnect).find((d) => d.counts !== null && 'policy' in d.counts && d.counts.policy === r);
      return entry?.code ? `${r}: ${entry.code}` : r;
    })
    .join(', ');

type Read = NonNullable<MetricSpec['read']>;
const counter = (name: string, help: string, read: Read, ...labels: Label[]): MetricSpec => ({ name, type: 'counter', help, read, labels });
const gauge = (name: string, help: string, read: Read, ...labels: Label[]): MetricSpec => ({ name, type: 'gauge', help, read, labels });

const SOURCE = label('source', PUBLISH_SOURCES);
const CONNECTION = label('connection', BUS_CONNECTIONS);
const BUS = label('bus', BUS_KINDS);
const DROP = reason(DropReason);
const EVICT = reason(EvictReason);
const PUBLISH_REJECT = reason(PublishRejectReason);
const UPGRADE_REJECT = reason(UpgradeRejectReason);
const POLICY_CLOSE = reason(PolicyCloseReason);
const RECOVERY = label('result', RecoveryResult);
const PURPOSE = label('purpose', HistoryReadPurpose);

export const FANOUT: MetricSpec = {
  name: 'hubcast_fanout_duration_seconds',
  type: 'histogram',
  help: 'Time to hand one bus message to every local subscriber: framing and queueing (the socket writes follow at the end of the turn, one per client).',
  labels: [],
  buckets: [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
};

export const HISTORY_READ: MetricSpec = {
  name: 'hubcast_history_read_duration_seconds',
  type: 'histogram',
  help: `Time of one history read from the bus's store, by purpose (${list(PURPOSE)}).`,
  labels: [PURPOSE],
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
};

/** Every hubcast_* metric, in exposition order. */
export const METRICS: readonly MetricSpec[] = [
  counter('hubcast_messages_dropped_total', `Deliveries dropped for a client, by reason (${list(DROP)}).`, (s) => s.stats.dropped, DROP),
  counter('hubcast_clients_evicted_total', `Clients evicted, by reason (${list(EVICT)}).`, (s) => s.stats.evicted, EVICT),
  gauge('hubcast_connections_open', 'Open WebSocket connections on this gateway.', (s) => s.stats.connectionsOpen),
  counter('hubcast_connections_opened_total', 'WebSocket connections accepted since start.', (s) => s.stats.connectionsOpened),
  counter('hubcast_publishes_accepted_total', `Publishes the bus has taken, by source (${list(SOURCE)}).`, (s) => s.stats.publishesAccepted, SOURCE),
  counter('hubcast_publishes_rejected_total', `Publishes rejected and not sent, by source (${list(SOURCE)}) and reason (${list(PUBLISH_REJECT)}).`, (s) => s.stats.publishesRejected, SOURCE, PUBLISH_REJECT),
  counter('hubcast_bus_messages_received_total', 'Messages received from the bus, each fanned out once to local subscribers.', (s) => s.stats.busMessages),
  counter('hubcast_deliveries_total', 'Frames written to client sockets.', (s) => s.stats.deliveries),
  counter('hubcast_protocol_errors_total', 'Error frames sent to clients, by error code.', (s) => s.stats.errors, label('code', ErrorCode)),
  gauge('hubcast_bus_connected', `1 while the bus connection is up, by connection (${list(CONNECTION)}); always 1 for the in-process bus.`, (s) => s.stats.busConnected, CONNECTION),
  counter('hubcast_bus_reconnects_total', `Reconnection attempts to the bus, by connection (${list(CONNECTION)}).`, (s) => s.stats.busReconnects, CONNECTION),
  counter('hubcast_bus_gaps_total', 'Bus messages that never reached this gateway and were not repaired: holes in a per-(origin, channel) sequence, or with history on, offsets history no longer held.', (s) => s.stats.busGaps),
  counter('hubcast_bus_gaps_repaired_total', 'Bus messages that never reached this gateway live and were delivered from history instead (gap repair).', (s) => s.stats.busGapsRepaired),
  counter('hubcast_bus_lost_total', 'lost notices: one per channel per unrepairable gap or lost history on this gateway, each sent to its local subscribers.', (s) => s.stats.busLost),
  counter('hubcast_bus_rewound_total', 'Offsets a Redis (Cluster) failover took back out of history after this gateway had delivered them; the channel moved to a new epoch and its clients got lost.', (s) => s.stats.busRewound),
  counter('hubcast_recoveries_total', `Subscribes with since, by result (${list(RECOVERY)}).`, (s) => s.stats.recoveries, RECOVERY),
  counter('hubcast_bus_duplicates_total', 'Bus messages that arrived again; each was delivered once only.', (s) => s.stats.busDuplicates),
  counter('hubcast_bus_invalid_total', 'Bus messages without a valid hubcast envelope (not from a gateway of this version), not delivered.', (s) => s.stats.busInvalid),
  gauge('hubcast_bus_probe_ok', '1 while the last pub/sub probe came back within BUS_PROBE_TIMEOUT_MS; always 1 for the in-process bus.', (s) => s.stats.busProbeOk),
  counter('hubcast_bus_probe_failures_total', 'Pub/sub probes that did not come back within BUS_PROBE_TIMEOUT_MS.', (s) => s.stats.busProbeFailures),
  gauge('hubcast_ready', '1 while /readyz answers 200: bus connected and subscribed, not draining.', (s) => (s.isReady() ? 1 : 0)),
  gauge('hubcast_queue_depth_messages', 'Frames waiting in client send queues, summed over clients.', (s) => s.stats.queuedFrames),
  gauge('hubcast_queue_depth_bytes', 'Bytes waiting in client send queues, summed over clients.', (s) => s.stats.queuedBytes),
  gauge('hubcast_slow_clients', 'Clients currently over their send-queue bound (dropping, and evicted if they stay there).', (s) => s.stats.slowClients),
  gauge('hubcast_channels', 'Channels this gateway holds on the bus: with a local subscriber or an upgrade waiting for them.', (s) => s.channelCount()),
  gauge('hubcast_subscriptions', 'Client subscriptions on this gateway.', (s) => s.subscriptionCount()),
  counter('hubcast_upgrades_rejected_total', `WebSocket upgrades refused before the handshake, by reason (${list(UPGRADE_REJECT)}).`, (s) => s.stats.upgradesRejected, UPGRADE_REJECT),
  counter('hubcast_rate_limited_total', 'Inbound frames (messages, pings) refused by the per-client rate limit.', (s) => s.stats.rateLimited),
  counter('hubcast_clients_closed_total', `Clients closed by the gateway other than evictions (policy, or a fault in the gateway), by reason (${policyCloses(POLICY_CLOSE)}).`, (s) => s.stats.policyCloses, POLICY_CLOSE),
  gauge('hubcast_info', `Always 1; the bus label says which bus this gateway runs (${list(BUS)}).`, (s) => ({ [s.busKind]: 1 }), BUS),
  FANOUT,
  HISTORY_READ,
];

/** Calls `each` with the label values and the number of every series a reading holds. */
export function series(labels: readonly Label[], reading: Reading, each: (values: Record<string, string>, value: number) => void): void {
  const walk = (depth: number, r: Reading | undefined, values: Record<string, string>): void => {
    if (r === undefined) return;
    if (typeof r === 'number') return each(values, r);
    const l = labels[depth]!;
    for (const value of l.values) walk(depth + 1, r[value], { ...values, [l.name]: value });
  };
  walk(0, reading, {});
}

/**
 * A histogram kept in Buckets, as the registry reads a metric: its name, help and type, get() for
 * the values (the registry's text and JSON expositions both call it when there is no
 * getForPromString), reset().
 */
function scraped(spec: MetricSpec, buckets: Buckets): Metric {
  const { name, help } = spec;
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: () => Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values: buckets.series(name) }),
    reset: () => buckets.reset(),
  };
  return metric as unknown as Metric;
}

export function createMetrics(sources: MetricsSources): Metrics {
  const registry = new Registry();
  // The event-loop delay is sampled every 100 ms, not prom-client's default 10 ms: a timer at
  // 100 Hz cost an idle gateway 0.5 % of a core on the 2-core development machine (half the idle budget).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  for (const spec of METRICS) {
    const read = spec.read;
    if (read === undefined) continue; // observed, not read: the histogram below
    const options = { name: spec.name, help: spec.help, labelNames: spec.labels.map((l) => l.name), registers: [registry] };
    if (spec.type === 'counter') {
      // A counter mirrors a running total kept in Stats: each collect() resets and re-adds it.
      new Counter({
        ...options,
        collect() {
          this.reset();
          series(spec.labels, read(sources), (labels, value) => this.inc(labels, value));
        },
      });
    } else {
      new Gauge({
        ...options,
        collect() {
          series(spec.labels, read(sources), (labels, value) => this.set(labels, value));
        },
      });
    }
  }
  // Observed on every bus message, so counted in Buckets and exposed from them at scrape time.
  const fanout = new Buckets(FANOUT.buckets!);
  registry.registerMetric(scraped(FANOUT, fanout));
  const reads = new Histogram({
    name: HISTORY_READ.name,
    help: HISTORY_READ.help,
    labelNames: [PURPOSE.name],
    buckets: [...HISTORY_READ.buckets!],
    registers: [registry],
  });
  // Every purpose exported from the start, so a dashboard sees 0 rather than no series.
  for (const purpose of PURPOSE.values) reads.zero({ purpose });
  return {
    registry,
    observeFanout: (seconds) => fanout.observe(seconds),
    observeHistoryRead: (purpose, seconds) => reads.observe({ purpose }, seconds),
  };
}

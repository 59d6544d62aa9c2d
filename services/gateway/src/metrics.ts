// Prometheus metrics. Counters live in Stats as plain numbers and are copied in at scrape time.
// Every label value comes from a server-chosen set (codes.ts), never from client input.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  type BusConnection,
  DropReason,
  ErrorCode,
  EvictReason,
  PUBLISH_SOURCES,
  PolicyCloseReason,
  PublishRejectReason,
  UpgradeRejectReason,
} from './codes.js';
import type { Stats } from './stats.js';

export interface MetricsSources {
  readonly stats: Stats;
  readonly busKind: 'memory' | 'redis';
  isReady(): boolean;
  channelCount(): number;
  subscriptionCount(): number;
}

export interface Metrics {
  readonly registry: Registry;
  observeFanout(seconds: number): void;
}

const BUS_CONNECTIONS: readonly BusConnection[] = ['publisher', 'subscriber'];

// Counters mirror running totals kept in Stats: each collect() resets and re-adds the total.
export function createMetrics(sources: MetricsSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const { stats } = sources;

  new Counter({
    name: 'hubcast_messages_dropped_total',
    help: 'Deliveries dropped for a client, by reason (queue_full, evicted, disconnected).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of Object.values(DropReason)) this.inc({ reason }, stats.dropped[reason]);
    },
  });
  new Counter({
    name: 'hubcast_clients_evicted_total',
    help: 'Clients evicted, by reason (slow_consumer, queue_overflow, heartbeat_timeout).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of Object.values(EvictReason)) this.inc({ reason }, stats.evicted[reason]);
    },
  });
  new Gauge({
    name: 'hubcast_connections_open',
    help: 'Open WebSocket connections on this gateway.',
    registers: [registry],
    collect() {
      this.set(stats.connectionsOpen);
    },
  });
  new Counter({
    name: 'hubcast_connections_opened_total',
    help: 'WebSocket connections accepted since start.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.connectionsOpened);
    },
  });
  new Counter({
    name: 'hubcast_publishes_accepted_total',
    help: 'Publishes the bus has taken, by source (ws, http).',
    labelNames: ['source'],
    registers: [registry],
    collect() {
      this.reset();
      for (const source of PUBLISH_SOURCES) this.inc({ source }, stats.publishesAccepted[source]);
    },
  });
  new Counter({
    name: 'hubcast_publishes_rejected_total',
    help: 'Publishes rejected and not sent, by source (ws, http) and reason (bus_unavailable, invalid, too_large, too_many_pending, unauthorized, forbidden).',
    labelNames: ['source', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const source of PUBLISH_SOURCES) {
        for (const reason of Object.values(PublishRejectReason)) {
          this.inc({ source, reason }, stats.publishesRejected[source][reason]);
        }
      }
    },
  });
  new Counter({
    name: 'hubcast_bus_messages_received_total',
    help: 'Messages received from the bus, each fanned out once to local subscribers.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.busMessages);
    },
  });
  new Counter({
    name: 'hubcast_deliveries_total',
    help: 'Frames written to client sockets.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.deliveries);
    },
  });
  new Counter({
    name: 'hubcast_protocol_errors_total',
    help: 'Error frames sent to clients, by error code.',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const code of Object.values(ErrorCode)) this.inc({ code }, stats.errors[code]);
    },
  });
  new Gauge({
    name: 'hubcast_bus_connected',
    help: '1 while the bus connection is up, by connection (publisher, subscriber); always 1 for the in-process bus.',
    labelNames: ['connection'],
    registers: [registry],
    collect() {
      for (const connection of BUS_CONNECTIONS) this.set({ connection }, stats.busConnected[connection]);
    },
  });
  new Counter({
    name: 'hubcast_bus_reconnects_total',
    help: 'Reconnection attempts to the bus, by connection (publisher, subscriber).',
    labelNames: ['connection'],
    registers: [registry],
    collect() {
      this.reset();
      for (const connection of BUS_CONNECTIONS) this.inc({ connection }, stats.busReconnects[connection]);
    },
  });
  new Counter({
    name: 'hubcast_bus_gaps_total',
    help: 'Bus messages that never reached this gateway: holes in a per-(origin, channel) sequence on a channel it held.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.busGaps);
    },
  });
  new Counter({
    name: 'hubcast_bus_duplicates_total',
    help: 'Bus messages that arrived again; each was delivered once only.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.busDuplicates);
    },
  });
  new Counter({
    name: 'hubcast_bus_invalid_total',
    help: 'Bus messages without a valid hubcast envelope (not from a gateway of this version), not delivered.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.busInvalid);
    },
  });
  new Gauge({
    name: 'hubcast_bus_probe_ok',
    help: '1 while the last pub/sub probe came back within BUS_PROBE_TIMEOUT_MS; always 1 for the in-process bus.',
    registers: [registry],
    collect() {
      this.set(stats.busProbeOk);
    },
  });
  new Counter({
    name: 'hubcast_bus_probe_failures_total',
    help: 'Pub/sub probes that did not come back within BUS_PROBE_TIMEOUT_MS.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.busProbeFailures);
    },
  });
  new Gauge({
    name: 'hubcast_ready',
    help: '1 while /readyz answers 200: bus connected and subscribed, not draining.',
    registers: [registry],
    collect() {
      this.set(sources.isReady() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'hubcast_queue_depth_messages',
    help: 'Frames waiting in client send queues, summed over clients.',
    registers: [registry],
    collect() {
      this.set(stats.queuedFrames);
    },
  });
  new Gauge({
    name: 'hubcast_queue_depth_bytes',
    help: 'Bytes waiting in client send queues, summed over clients.',
    registers: [registry],
    collect() {
      this.set(stats.queuedBytes);
    },
  });
  new Gauge({
    name: 'hubcast_slow_clients',
    help: 'Clients currently over their send-queue bound (dropping, and evicted if they stay there).',
    registers: [registry],
    collect() {
      this.set(stats.slowClients);
    },
  });
  new Gauge({
    name: 'hubcast_channels',
    help: 'Channels this gateway holds on the bus: with a local subscriber or an upgrade waiting for them.',
    registers: [registry],
    collect() {
      this.set(sources.channelCount());
    },
  });
  new Gauge({
    name: 'hubcast_subscriptions',
    help: 'Client subscriptions on this gateway.',
    registers: [registry],
    collect() {
      this.set(sources.subscriptionCount());
    },
  });
  new Counter({
    name: 'hubcast_upgrades_rejected_total',
    help: 'WebSocket upgrades refused before the handshake, by reason (invalid, unauthorized, forbidden, too_many_connections, draining, handshake_timeout).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of Object.values(UpgradeRejectReason)) this.inc({ reason }, stats.upgradesRejected[reason]);
    },
  });
  new Counter({
    name: 'hubcast_rate_limited_total',
    help: 'Inbound frames (messages, pings) refused by the per-client rate limit.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.rateLimited);
    },
  });
  new Counter({
    name: 'hubcast_clients_closed_total',
    help: 'Clients closed by policy, by reason (rate_limited: 1008, token_expired: 4001).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of Object.values(PolicyCloseReason)) this.inc({ reason }, stats.policyCloses[reason]);
    },
  });
  new Gauge({
    name: 'hubcast_info',
    help: 'Always 1; the bus label says which bus this gateway runs (memory, redis).',
    labelNames: ['bus'],
    registers: [registry],
  }).set({ bus: sources.busKind }, 1);

  const fanout = new Histogram({
    name: 'hubcast_fanout_duration_seconds',
    help: 'Time to hand one bus message to every local subscriber: framing and queueing (the socket writes follow at the end of the turn, one per client).',
    buckets: [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [registry],
  });

  return {
    registry,
    observeFanout: (seconds) => fanout.observe(seconds),
  };
}

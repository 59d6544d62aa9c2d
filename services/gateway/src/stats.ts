// Plain counters the hot path bumps with a single addition; metrics.ts reads them at scrape time,
// so no prom-client call (label lookup, hashing) sits on the delivery path.
import {
  type BusConnection,
  DropReason,
  ErrorCode,
  EvictReason,
  PUBLISH_SOURCES,
  PolicyCloseReason,
  PublishRejectReason,
  type PublishSource,
  RecoveryResult,
  UpgradeRejectReason,
} from './codes.js';

function zeroes<K extends string>(keys: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const key of keys) out[key] = 0;
  return out;
}

export class Stats {
  connectionsOpened = 0;
  connectionsOpen = 0;
  /** Frames written to a client socket. */
  deliveries = 0;
  /** Messages received from the bus (each is fanned out once). */
  busMessages = 0;
  /** Frames waiting in client send queues, summed over clients. */
  queuedFrames = 0;
  queuedBytes = 0;
  /** Clients currently over their queue bound (dropping, awaiting eviction). */
  slowClients = 0;
  /** Error frames sent to clients, by code. */
  readonly errors = zeroes(Object.values(ErrorCode));
  /** 1 while the bus connection is up (always 1 for the in-process bus). */
  readonly busConnected: Record<BusConnection, number> = { publisher: 0, subscriber: 0 };
  readonly busReconnects: Record<BusConnection, number> = { publisher: 0, subscriber: 0 };
  /**
   * Bus messages known missing and not repaired: holes in an (origin, channel) sequence
   * (bus/sequence.ts), or with history on, offsets history no longer held (bus/position-repair.ts).
   */
  busGaps = 0;
  /** Missing bus messages delivered from history instead (gap repair). */
  busGapsRepaired = 0;
  /** `lost` notices: one per channel per event on this gateway, each sent to the channel's local subscribers. */
  busLost = 0;
  /** Offsets a Redis failover took back out of history after this gateway had heard them (the channel moved to a new epoch). */
  busRewound = 0;
  /** Subscribes with `since`, by outcome. */
  readonly recoveries = zeroes(Object.values(RecoveryResult));
  /** Bus messages that arrived again and were not delivered twice. */
  busDuplicates = 0;
  /** Bus messages without a valid envelope, not delivered. */
  busInvalid = 0;
  /** 1 while the last pub/sub probe came back in time (always 1 for the in-process bus). */
  busProbeOk = 0;
  /** Probes not back on the subscriber within BUS_PROBE_TIMEOUT_MS. */
  busProbeFailures = 0;
  readonly dropped = zeroes(Object.values(DropReason));
  readonly evicted = zeroes(Object.values(EvictReason));
  /** Inbound frames refused by the per-client rate limit. */
  rateLimited = 0;
  readonly upgradesRejected = zeroes(Object.values(UpgradeRejectReason));
  readonly policyCloses = zeroes(Object.values(PolicyCloseReason));
  readonly publishesAccepted = zeroes(PUBLISH_SOURCES);
  readonly publishesRejected: Record<PublishSource, Record<PublishRejectReason, number>> = {
    ws: zeroes(Object.values(PublishRejectReason)),
    http: zeroes(Object.values(PublishRejectReason)),
  };
}

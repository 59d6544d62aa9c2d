// Plain counters the hot path bumps with a single addition; metrics.ts reads them at scrape time,
// so no prom-client call (label lookup, hashing) sits on the delivery path.
import { DropReason, ErrorCode, EvictReason } from './codes.js';

export type BusConnection = 'publisher' | 'subscriber';

export type PublishSource = 'ws' | 'http';
export const PUBLISH_SOURCES: readonly PublishSource[] = ['ws', 'http'];

export const PublishRejectReason = {
  BusUnavailable: 'bus_unavailable',
  Invalid: 'invalid',
  TooLarge: 'too_large',
  TooManyPending: 'too_many_pending',
  Unauthorized: 'unauthorized',
  Forbidden: 'forbidden',
} as const;
export type PublishRejectReason = (typeof PublishRejectReason)[keyof typeof PublishRejectReason];

/** Why an upgrade was refused before the 101: the `reason` label of hubcast_upgrades_rejected_total. */
export const UpgradeRejectReason = {
  /** Bad path, URL or ?channels (400, 404). */
  Invalid: 'invalid',
  /** No valid token (401). */
  Unauthorized: 'unauthorized',
  /** Origin not allowed, or ?channels outside the token's subscribe patterns (403). */
  Forbidden: 'forbidden',
  /** MAX_CONNECTIONS reached (503). */
  TooManyConnections: 'too_many_connections',
  /** The gateway is draining (503). */
  Draining: 'draining',
  /** The handshake did not complete within HANDSHAKE_TIMEOUT_MS (socket destroyed). */
  HandshakeTimeout: 'handshake_timeout',
} as const;
export type UpgradeRejectReason = (typeof UpgradeRejectReason)[keyof typeof UpgradeRejectReason];

/** Why the gateway closed a client on policy: the `reason` label of hubcast_clients_closed_total. */
export const PolicyCloseReason = {
  /** Sustained abuse of the rate limit (1008). */
  RateLimited: 'rate_limited',
  /** The token expired (4001). */
  TokenExpired: 'token_expired',
} as const;
export type PolicyCloseReason = (typeof PolicyCloseReason)[keyof typeof PolicyCloseReason];

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
  /** Bus messages that never arrived: holes in an (origin, channel) sequence (bus/sequence.ts). */
  busGaps = 0;
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

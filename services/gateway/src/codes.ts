// The one registry of WebSocket close codes and protocol error codes.
// README.md documents every entry; test/unit/codes.test.ts keeps the two in step.

export const CloseCode = {
  /** Normal closure: the client or the server ended the session on purpose. */
  Normal: 1000,
  /** Going away: the gateway is shutting down (sent after DRAIN_MS). Reconnect elsewhere. */
  GoingAway: 1001,
  /** Protocol error: the peer broke the WebSocket framing rules (set by ws). */
  ProtocolError: 1002,
  /** Invalid frame payload data: a text frame that is not valid UTF-8 (set by ws). */
  InvalidPayload: 1007,
  /** Policy violation: the client kept sending over its rate limit (RATE_LIMIT_PER_SEC, RATE_LIMIT_BURST). */
  PolicyViolation: 1008,
  /** Message too big: an inbound frame exceeded MAX_MESSAGE_BYTES. */
  MessageTooBig: 1009,
  /** Internal error: an unexpected server fault while handling this connection. */
  InternalError: 1011,
  /** Try again later: the client could not keep up (slow consumer) and was evicted. */
  TryAgainLater: 1013,
  /** Token expired: the connection's token passed its exp. Get a fresh token and reconnect. */
  TokenExpired: 4001,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const ErrorCode = {
  /** The frame is not valid JSON, or not a JSON object. Connection stays open. */
  InvalidJson: 'invalid_json',
  /** Valid JSON but a required field is missing or has the wrong type. Connection stays open. */
  InvalidMessage: 'invalid_message',
  /** The `op` field names no known operation. Connection stays open. */
  UnknownOp: 'unknown_op',
  /** The channel is not 1-128 characters of [A-Za-z0-9_.:-]. Connection stays open. */
  InvalidChannel: 'invalid_channel',
  /** A binary frame was sent; the protocol is JSON text frames. Connection stays open. */
  BinaryNotSupported: 'binary_not_supported',
  /** The client already holds MAX_CHANNELS_PER_CLIENT subscriptions. Connection stays open. */
  TooManyChannels: 'too_many_channels',
  /** Too many of this connection's commands are waiting on the bus; wait for their replies. */
  TooManyPending: 'too_many_pending',
  /** The client sent faster than its rate limit; the frame was ignored. Connection stays open. */
  RateLimited: 'rate_limited',
  /** The token does not grant this channel (or the origin is not allowed). Connection stays open (HTTP 403). */
  Forbidden: 'forbidden',
  /** No valid token or API key was presented (HTTP 401). */
  Unauthorized: 'unauthorized',
  /** The gateway already holds MAX_CONNECTIONS connections (HTTP 503 at upgrade). */
  TooManyConnections: 'too_many_connections',
  /** The encoded message exceeds MAX_MESSAGE_BYTES (HTTP 413). */
  MessageTooLarge: 'message_too_large',
  /** The bus (Redis) is down, so the publish was rejected and not sent (HTTP 503). */
  BusUnavailable: 'bus_unavailable',
  /** The publish was handed to Redis but not confirmed in time: it may still be delivered (HTTP 503). */
  BusUnconfirmed: 'bus_unconfirmed',
  /** No such HTTP route (HTTP 404). */
  NotFound: 'not_found',
  /** The HTTP method is not allowed on this route (HTTP 405). */
  MethodNotAllowed: 'method_not_allowed',
  /** The gateway is draining and refuses new connections (HTTP 503). */
  Draining: 'draining',
  /** An unexpected server fault (HTTP 500). */
  InternalError: 'internal_error',
  /** GET /history while history is off (HISTORY_SIZE=0) (HTTP 404). */
  HistoryDisabled: 'history_disabled',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * One refusal: the error code, HTTP status, metric reason and message a call site would otherwise
 * pick by hand. A call site may replace the message with a detail that names its input (which
 * channel, which limit), never the code, status or reason. `reason` is the label counted for the
 * route that refuses (hubcast_upgrades_rejected_total at upgrade, ..._publishes_rejected_total on
 * a publish); routes that count nothing (404 on GET) ignore it.
 */
export interface Refusal<R extends string = UpgradeRejectReason | PublishRejectReason> {
  readonly code: ErrorCode;
  /** The HTTP answer; absent where only the WebSocket protocol refuses (an error frame). */
  readonly status?: number;
  readonly reason: R;
  readonly message: string;
}
/** A refusal with the message for this request; what the pure checks return. */
export interface Refused<R extends string = UpgradeRejectReason | PublishRejectReason> {
  readonly refusal: Refusal<R>;
  readonly detail?: string;
}

/** README.md's "HTTP status codes" table lists every (status, code) pair here; test/unit/docs.test.ts checks it. */
export const Refusal = {
  InvalidJson: { code: ErrorCode.InvalidJson, status: 400, reason: 'invalid', message: 'body is not valid JSON' },
  InvalidMessage: { code: ErrorCode.InvalidMessage, status: 400, reason: 'invalid', message: 'invalid request' },
  InvalidChannel: {
    code: ErrorCode.InvalidChannel,
    status: 400,
    reason: 'invalid',
    message: 'channel must be 1-128 characters of [A-Za-z0-9_.:-]',
  },
  TooManyChannels: {
    code: ErrorCode.TooManyChannels,
    status: 400,
    reason: 'invalid',
    message: 'more channels than MAX_CHANNELS_PER_CLIENT',
  },
  Unauthorized: { code: ErrorCode.Unauthorized, status: 401, reason: 'unauthorized', message: 'a token is required' },
  OriginForbidden: { code: ErrorCode.Forbidden, status: 403, reason: 'forbidden', message: 'origin not allowed (ALLOWED_ORIGINS)' },
  SubscribeForbidden: {
    code: ErrorCode.Forbidden,
    status: 403,
    reason: 'forbidden',
    message: 'the token does not allow subscribing to this channel',
  },
  PublishForbidden: {
    code: ErrorCode.Forbidden,
    status: 403,
    reason: 'forbidden',
    message: 'the token does not allow publishing to this channel',
  },
  NotFound: { code: ErrorCode.NotFound, status: 404, reason: 'invalid', message: 'no such route' },
  HistoryDisabled: { code: ErrorCode.HistoryDisabled, status: 404, reason: 'invalid', message: 'history is off on this gateway (HISTORY_SIZE=0)' },
  MethodNotAllowed: { code: ErrorCode.MethodNotAllowed, status: 405, reason: 'invalid', message: 'method not allowed' },
  MessageTooLarge: {
    code: ErrorCode.MessageTooLarge,
    status: 413,
    reason: 'too_large',
    message: 'encoded message exceeds MAX_MESSAGE_BYTES',
  },
  /** GET /ws without the upgrade headers; the code is the one a malformed request gets. */
  UpgradeRequired: {
    code: ErrorCode.InvalidMessage,
    status: 426,
    reason: 'invalid',
    message: 'GET /ws must be a WebSocket upgrade',
  },
  InternalError: { code: ErrorCode.InternalError, status: 500, reason: 'invalid', message: 'internal error' },
  BusUnavailable: {
    code: ErrorCode.BusUnavailable,
    status: 503,
    reason: 'bus_unavailable',
    message: 'the message bus is unavailable; the message was not sent',
  },
  // 503 like bus_unavailable: the gateway could not finish the publish. The code, not the status,
  // says that a retry may deliver the message twice.
  BusUnconfirmed: {
    code: ErrorCode.BusUnconfirmed,
    status: 503,
    reason: 'bus_unconfirmed',
    message: 'Redis did not confirm the message in time; it may still be delivered',
  },
  TooManyConnections: {
    code: ErrorCode.TooManyConnections,
    status: 503,
    reason: 'too_many_connections',
    message: 'gateway is full (MAX_CONNECTIONS)',
  },
  Draining: { code: ErrorCode.Draining, status: 503, reason: 'draining', message: 'gateway is shutting down; connect to another' },
  /** WebSocket only: the connection's commands waiting on the bus are at their cap. */
  TooManyPending: {
    code: ErrorCode.TooManyPending,
    reason: 'too_many_pending',
    message: 'too many commands are waiting on the bus; wait for their replies',
  },
} as const satisfies Record<string, Refusal<string>>;

/** Reasons a delivery is dropped: the `reason` label of hubcast_messages_dropped_total. */
export const DropReason = {
  /** The client's send queue was full (drop-oldest or drop-newest policy). */
  QueueFull: 'queue_full',
  /** Frames still queued, or arriving at a full queue, when the client was evicted. */
  Evicted: 'evicted',
  /** Frames still queued when the connection closed for any other reason. */
  Disconnected: 'disconnected',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Reasons a client is evicted: the `reason` label of hubcast_clients_evicted_total. */
export const EvictReason = {
  /** Under a drop policy, the client stayed over its queue bound for SLOW_CLIENT_EVICT_MS. */
  SlowConsumer: 'slow_consumer',
  /** Under OVERFLOW_POLICY=evict, a frame did not fit in the client's queue. */
  QueueOverflow: 'queue_overflow',
  /** The client did not answer a ping within PING_INTERVAL_MS. */
  HeartbeatTimeout: 'heartbeat_timeout',
} as const;
export type EvictReason = (typeof EvictReason)[keyof typeof EvictReason];

// Label values of the other metrics. Every label value comes from one of these fixed sets.

/** Which bus connection: the `connection` label of hubcast_bus_connected and hubcast_bus_reconnects_total. */
export type BusConnection = 'publisher' | 'subscriber';

export type PublishSource = 'ws' | 'http';
export const PUBLISH_SOURCES: readonly PublishSource[] = ['ws', 'http'];

export const PublishRejectReason = {
  BusUnavailable: 'bus_unavailable',
  /** Handed to Redis, not confirmed in time: may still be delivered. */
  BusUnconfirmed: 'bus_unconfirmed',
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

/** How a subscribe with `since` ended: the `result` label of hubcast_recoveries_total (recovery.ts's outcome table). */
export const RecoveryResult = {
  Recovered: 'recovered',
  EpochMismatch: 'epoch_mismatch',
  BeyondTop: 'beyond_top',
  TooMany: 'too_many',
  Missing: 'missing',
  Interrupted: 'interrupted',
  Overflow: 'overflow',
  NoHistory: 'no_history',
} as const;
export type RecoveryResult = (typeof RecoveryResult)[keyof typeof RecoveryResult];

/** Why history was read: the `purpose` label of hubcast_history_read_duration_seconds. */
export const HistoryReadPurpose = {
  /** A subscribe with `since`. */
  Recovery: 'recovery',
  /** Gap repair: the offsets a jump skipped. */
  Repair: 'repair',
  /** A channel's position: a subscribe ack, or the check of each channel after the subscriber reconnects. */
  Top: 'top',
  /** GET /history. */
  Http: 'http',
} as const;
export type HistoryReadPurpose = (typeof HistoryReadPurpose)[keyof typeof HistoryReadPurpose];

/** Why the gateway closed a client on policy: the `reason` label of hubcast_clients_closed_total. */
export const PolicyCloseReason = {
  /** Sustained abuse of the rate limit (1008). */
  RateLimited: 'rate_limited',
  /** The token expired (4001). */
  TokenExpired: 'token_expired',
  /** Handling the connection threw (1011): a gateway bug, logged with its stack; counted so a dashboard shows it. */
  InternalError: 'internal_error',
  /** Writing to the socket threw (terminated): a gateway or runtime fault, logged with its stack. */
  WriteError: 'write_error',
} as const;
export type PolicyCloseReason = (typeof PolicyCloseReason)[keyof typeof PolicyCloseReason];

/**
 * One entry per way the gateway ends a connection (centrifuge's disconnect.go): the close code and
 * reason the peer gets, and the counter the close moves. Call sites pass the entry:
 * `hub.disconnect(client, Disconnect.RateLimited)`. README.md's Close codes table shows each code's
 * reason; test/unit/docs.test.ts keeps the two in step.
 */
export interface Disconnect {
  /** Sent in the close frame; null: the socket is terminated with no close frame (the peer sees 1006). */
  readonly code: CloseCode | null;
  /** The close frame's reason (at most 123 bytes); for a terminate, only logged. */
  readonly reason: string;
  /**
   * The counter this close moves: an eviction (hubcast_clients_evicted_total, and the frames still
   * queued count as dropped `evicted`), a policy close (hubcast_clients_closed_total), or none.
   */
  readonly counts: { readonly evicted: EvictReason } | { readonly policy: PolicyCloseReason } | null;
}

export const Disconnect = {
  /** Stayed over its queue bound for SLOW_CLIENT_EVICT_MS under a drop policy. */
  SlowConsumer: { code: CloseCode.TryAgainLater, reason: 'slow consumer', counts: { evicted: EvictReason.SlowConsumer } },
  /** A frame did not fit its queue under OVERFLOW_POLICY=evict. */
  QueueOverflow: { code: CloseCode.TryAgainLater, reason: 'slow consumer', counts: { evicted: EvictReason.QueueOverflow } },
  /** Did not answer the previous ping: a dead peer completes no handshake, so it is terminated. */
  HeartbeatTimeout: { code: null, reason: 'heartbeat timeout', counts: { evicted: EvictReason.HeartbeatTimeout } },
  /** Kept sending over its rate limit. */
  RateLimited: { code: CloseCode.PolicyViolation, reason: 'rate limit exceeded', counts: { policy: PolicyCloseReason.RateLimited } },
  /** The connection's token reached its exp. */
  TokenExpired: { code: CloseCode.TokenExpired, reason: 'token expired', counts: { policy: PolicyCloseReason.TokenExpired } },
  /** The gateway is shutting down, after DRAIN_MS. */
  Shutdown: { code: CloseCode.GoingAway, reason: 'server shutting down', counts: null },
  /** Handling this connection failed unexpectedly; everyone else stays served. */
  InternalError: { code: CloseCode.InternalError, reason: 'internal error', counts: { policy: PolicyCloseReason.InternalError } },
  /** Writing to the socket threw: no close frame can follow, so it is terminated. */
  WriteError: { code: null, reason: 'write error', counts: { policy: PolicyCloseReason.WriteError } },
} as const satisfies Record<string, Disconnect>;

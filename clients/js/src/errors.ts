// The SDK's own error codes, and the one error class every rejection and 'error' event carries.

/** Codes the SDK raises itself; errors from the gateway carry the gateway's code instead. */
export const ClientErrorCode = {
  /** A publish while not connected, or one still waiting for its ack when the connection closed. */
  Disconnected: 'disconnected',
  /** No reply within timeoutMs (a publish's fate is then unknown: it may still be delivered). */
  Timeout: 'timeout',
  /** The upgrade was refused with HTTP 401 (no valid token); the client stops. */
  Unauthorized: 'unauthorized',
  /** The upgrade was refused with HTTP 403 (origin or ?channels not allowed); the client stops. */
  Forbidden: 'forbidden',
  /** Closed with 1008: the client sent over its rate limit; the client stops. */
  RateLimited: 'rate_limited',
  /** Closed with 4001 and there is no getToken to fetch a new token; the client stops. */
  TokenExpired: 'token_expired',
  /** getToken threw or rejected; the client backs off and calls it again. */
  TokenFailed: 'token_failed',
  /** A connection attempt closed before it opened (gateway down or upgrade refused; a browser cannot tell). */
  ConnectFailed: 'connect_failed',
  /** subscribe() for a channel this client already holds. */
  AlreadySubscribed: 'already_subscribed',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export class HubcastError extends Error {
  override readonly name = 'HubcastError';
  constructor(
    /** A ClientErrorCode, or the code of the gateway's error frame (`forbidden`, `bus_unavailable`, ...). */
    readonly code: string,
    message: string,
    /** The HTTP status of a refused upgrade, when the WebSocket implementation exposes it (Node `ws`). */
    readonly status?: number,
    /** The close code that ended the connection, when a close caused the error. */
    readonly closeCode?: number,
  ) {
    super(message);
  }
}

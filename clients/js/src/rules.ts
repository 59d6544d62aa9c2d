// What the client does when a connection ends: one entry per close code, upgrade status and
// local cause. Call sites look an entry up and pass it on; the README table mirrors this file.
import { ClientErrorCode } from './errors.js';

/**
 * - `backoff`: reconnect after a full-jitter exponential delay.
 * - `soon`: reconnect after a delay in [0, minReconnectDelayMs): the gateway asked for it.
 * - `refresh`: call getToken, then reconnect soon (stop if there is no getToken).
 * - `stop`: retrying cannot fix it; state `disconnected` and an 'error' event.
 */
export type Action = 'backoff' | 'soon' | 'refresh' | 'stop';

export interface Rule {
  readonly action: Action;
  /** The 'error' event's code, for `stop` (and for failures before open). */
  readonly error?: ClientErrorCode;
  /** Why, in words: goes into the error message. */
  readonly why: string;
  /**
   * When the refused token was fetched for an earlier attempt and a getToken exists: fetch a new
   * one and retry once, instead of stopping (it may have expired while the client was away).
   */
  readonly refreshFirst?: boolean;
}

const backoff = (why: string): Rule => ({ action: 'backoff', why });

/** Close codes of a connection that had opened. */
export const CLOSE_RULES: ReadonlyMap<number, Rule> = new Map<number, Rule>([
  [1000, backoff('the server ended the session (only disconnect() stops the client)')],
  [1001, { action: 'soon', why: 'the gateway is draining; another one takes the reconnect' }],
  [1006, backoff('the connection dropped without a close frame')],
  [
    1008,
    {
      action: 'stop',
      error: ClientErrorCode.RateLimited,
      why: 'closed with 1008 for sending over the rate limit; reconnecting would only repeat it',
    },
  ],
  [1011, backoff('internal error on the gateway')],
  [1013, backoff('evicted as a slow consumer')],
  [4001, { action: 'refresh', why: 'the token expired' }],
]);

/** Any other close code: reconnect with backoff. */
export const DEFAULT_CLOSE_RULE: Rule = backoff('the connection closed');

/** HTTP statuses of a refused upgrade, where the WebSocket implementation exposes them (Node `ws`). */
export const UPGRADE_RULES: ReadonlyMap<number, Rule> = new Map<number, Rule>([
  [
    401,
    {
      action: 'stop',
      error: ClientErrorCode.Unauthorized,
      why: 'the upgrade was refused with 401: the token is missing, invalid or expired, and sending it again cannot help',
      refreshFirst: true,
    },
  ],
  [
    403,
    {
      action: 'stop',
      error: ClientErrorCode.Forbidden,
      why: 'the upgrade was refused with 403: the origin or the channels are not allowed',
    },
  ],
]);

/** Any other refusal (503 draining or full, 404, ...): back off and try again. */
export const DEFAULT_UPGRADE_RULE: Rule = {
  action: 'backoff',
  error: ClientErrorCode.ConnectFailed,
  why: 'the upgrade was refused',
};

/**
 * Closed before it opened without a readable status: in a browser a refused upgrade (401, 403)
 * and a gateway that is down look the same (close 1006 before open). Stopping would strand
 * clients during an outage, so the client keeps backing off up to maxReconnectDelayMs and
 * reports each failure as an 'error'.
 */
export const CONNECT_FAILED: Rule = {
  action: 'backoff',
  error: ClientErrorCode.ConnectFailed,
  why: 'the connection closed before it opened (the gateway is down or refused the upgrade)',
};

/** Causes on this side, reported as close code 1006 with their reason. */
export const LOCAL_RULES = {
  /** Nothing (message, ack or ping reply) arrived for heartbeatTimeoutMs. */
  HeartbeatTimeout: { action: 'backoff', why: 'heartbeat timeout' },
  /** A subscribe got no ack within timeoutMs: the connection is not usable. */
  SubscribeTimeout: { action: 'backoff', why: 'subscribe timeout' },
  /** getToken threw or rejected. */
  TokenFailed: { action: 'backoff', error: ClientErrorCode.TokenFailed, why: 'getToken failed' },
  /** The WebSocket constructor threw. */
  SocketFailed: { action: 'backoff', error: ClientErrorCode.ConnectFailed, why: 'the WebSocket could not be created' },
} as const satisfies Record<string, Rule>;

/** The close code reported for local causes: no close frame came from the gateway. */
export const LOCAL_CLOSE_CODE = 1006;

/** 4001 without a getToken: the same token would be refused with 401. */
export const TOKEN_EXPIRED_NO_REFRESH: Rule = {
  action: 'stop',
  error: ClientErrorCode.TokenExpired,
  why: 'the token expired (4001) and there is no getToken to fetch another',
};

/** A 401 for a token used before, with a getToken: fetch a new token, then retry. */
export const REUSED_TOKEN_REFUSED: Rule = {
  action: 'refresh',
  why: 'the upgrade was refused with 401 for a token fetched earlier',
};

// The connection state machine: which state the client is in, and what it does when a
// connection ends (reconnect after which delay, refresh the token first, or stop). Pure: no
// sockets, no timers; the client applies its decisions.
import { backoffDelay, soonDelay, type Random } from './backoff.js';
import {
  CLOSE_RULES,
  CONNECT_FAILED,
  DEFAULT_CLOSE_RULE,
  DEFAULT_UPGRADE_RULE,
  REUSED_TOKEN_REFUSED,
  TOKEN_EXPIRED_NO_REFRESH,
  UPGRADE_RULES,
  type Rule,
} from './rules.js';

export type State = 'disconnected' | 'connecting' | 'connected';

/** How a connection attempt ended. */
export interface Ended {
  /** Whether the socket had opened. */
  readonly opened: boolean;
  /** The close code (1006 when none came). */
  readonly code: number;
  /** The HTTP status of a refused upgrade, when the WebSocket implementation exposes it. */
  readonly status?: number;
}

export type Decision =
  | {
      readonly kind: 'reconnect';
      readonly rule: Rule;
      readonly delayMs: number;
      /** Call getToken before the next attempt. */
      readonly refreshToken: boolean;
      /** Attempts since the last open, this one included. */
      readonly attempt: number;
    }
  | { readonly kind: 'stop'; readonly rule: Rule };

export interface MachineOptions {
  readonly minReconnectDelayMs: number;
  readonly maxReconnectDelayMs: number;
  readonly random: Random;
  /** Whether a new token can be fetched (a getToken was given). */
  readonly canRefresh: boolean;
}

/** The rule for how a connection ended. */
export function ruleFor(ended: Ended): Rule {
  if (ended.opened) return CLOSE_RULES.get(ended.code) ?? DEFAULT_CLOSE_RULE;
  if (ended.status !== undefined) return UPGRADE_RULES.get(ended.status) ?? DEFAULT_UPGRADE_RULE;
  return CONNECT_FAILED;
}

export class ConnectionMachine {
  private current: State = 'disconnected';
  /** Attempts since the last open: the backoff exponent. */
  private failures = 0;

  constructor(private readonly options: MachineOptions) {}

  get state(): State {
    return this.current;
  }

  /** connect(): only from `disconnected`. Returns whether an attempt should start. */
  start(): boolean {
    if (this.current !== 'disconnected') return false;
    this.current = 'connecting';
    this.failures = 0;
    return true;
  }

  opened(): void {
    this.current = 'connected';
    this.failures = 0;
  }

  /**
   * The connection (or the attempt) ended by this rule: what next. `tokenFresh`: the attempt's
   * token was fetched for it (false when it was given, or reused from an earlier attempt).
   */
  ended(rule: Rule, tokenFresh = true): Decision {
    const { minReconnectDelayMs: min, maxReconnectDelayMs: max, random, canRefresh } = this.options;
    if (rule.refreshFirst === true && canRefresh && !tokenFresh) rule = REUSED_TOKEN_REFUSED;
    if (rule.action === 'refresh' && !canRefresh) rule = TOKEN_EXPIRED_NO_REFRESH;
    if (rule.action === 'stop') {
      this.current = 'disconnected';
      return { kind: 'stop', rule };
    }
    const delayMs = rule.action === 'backoff' ? backoffDelay(this.failures, min, max, random) : soonDelay(min, random);
    this.failures++;
    this.current = 'connecting';
    return { kind: 'reconnect', rule, delayMs, refreshToken: rule.action === 'refresh', attempt: this.failures };
  }

  /** disconnect(). */
  stop(): void {
    this.current = 'disconnected';
  }
}

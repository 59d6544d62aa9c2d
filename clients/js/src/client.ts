// HubcastClient: the I/O shell around the pure cores. It owns one WebSocket at a time, applies
// the connection machine's decisions with timers, and routes frames to subscriptions.
import type { Random } from './backoff.js';
import { Emitter } from './emitter.js';
import { ClientErrorCode, HubcastError } from './errors.js';
import { Liveness } from './heartbeat.js';
import { ConnectionMachine, type State, ruleFor } from './machine.js';
import {
  type Frame,
  type Id,
  OPEN,
  type SocketLike,
  type WebSocketConstructor,
  encodePing,
  encodePublish,
  encodeSubscribe,
  encodeUnsubscribe,
  parseFrame,
} from './protocol.js';
import { LOCAL_CLOSE_CODE, LOCAL_RULES, type Rule } from './rules.js';
import { Subscription, type SubscriptionHost } from './subscription.js';
import { isStale } from './token.js';

export interface HubcastClientOptions {
  /** A JWT, sent as `?token=` (browsers cannot set headers on a WebSocket). */
  readonly token?: string;
  /**
   * Fetches a token: before the first connect when no `token` is given, after a 4001, before
   * reusing a JWT whose `exp` is past (or within 5 s), and once after a 401 for a reused token.
   */
  readonly getToken?: () => Promise<string>;
  /** The backoff's first window, and the spread of a reconnect after 1001 or 4001. Default 500. */
  readonly minReconnectDelayMs?: number;
  /** The backoff's largest window. Default 20000. */
  readonly maxReconnectDelayMs?: number;
  /** How long a publish or a subscribe waits for its ack. Default 10000. */
  readonly timeoutMs?: number;
  /** The connection is dead when nothing arrives for this long; a ping goes out at half of it. 0: off. Default 20000. */
  readonly heartbeatTimeoutMs?: number;
  /** The WebSocket constructor. Default globalThis.WebSocket; on Node 20 pass `ws`'s. */
  readonly WebSocket?: WebSocketConstructor;
  /** The jitter's random source, uniform in [0, 1). Default Math.random. */
  readonly random?: Random;
}

export interface StateEvent {
  readonly state: State;
  readonly previous: State;
}

export interface DisconnectedEvent {
  /** The close code; 1006 for an end without a close frame (including the SDK's own: heartbeat or subscribe timeout). */
  readonly code: number;
  readonly reason: string;
  readonly willReconnect: boolean;
}

export interface ClientEvents {
  state: (event: StateEvent) => void;
  connected: (event: { readonly url: string }) => void;
  disconnected: (event: DisconnectedEvent) => void;
  error: (error: HubcastError) => void;
}

type Pending =
  | {
      readonly kind: 'publish';
      readonly resolve: () => void;
      readonly reject: (err: HubcastError) => void;
      readonly timer: ReturnType<typeof setTimeout>;
    }
  | { readonly kind: 'subscribe'; readonly sub: Subscription; readonly sentSince: boolean; readonly timer: ReturnType<typeof setTimeout> };

const positive = (name: string, value: number | undefined, fallback: number, allowZero = false): number => {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !allowZero)) {
    throw new RangeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number of milliseconds`);
  }
  return value;
};

/** ws's close() waits for the peer's close frame; terminate() drops a dead connection at once. */
function drop(socket: SocketLike): void {
  const terminate = (socket as { terminate?: () => void }).terminate;
  if (typeof terminate === 'function') terminate.call(socket);
  else socket.close(1000);
}

export class HubcastClient extends Emitter<ClientEvents> {
  private readonly url: string;
  private readonly WS: WebSocketConstructor;
  private readonly getToken: (() => Promise<string>) | undefined;
  private readonly timeoutMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly machine: ConnectionMachine;
  private readonly liveness: Liveness;

  private token: string | undefined;
  /** Call getToken before the next attempt (after a 4001). */
  private refreshToken = false;
  /** Whether the current attempt's token was fetched for it. */
  private tokenFresh = false;
  private socket: SocketLike | null = null;
  /** Whether the current socket has opened. */
  private opened = false;
  /** The HTTP status of the current attempt's refused upgrade, when the WebSocket exposes it. */
  private status: number | undefined;
  /** Bumped at every attempt and disconnect(): a getToken that resolves late is ignored. */
  private generation = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  private nextId: Id = 1;
  private readonly subs = new Map<string, Subscription>();
  private readonly pending = new Map<Id, Pending>();
  /** What subscriptions call back into (not a public method of the client). */
  private readonly host: SubscriptionHost = { unsubscribe: (sub) => this.dropSubscription(sub) };

  constructor(url: string, options: HubcastClientOptions = {}) {
    super();
    this.url = new URL(url).toString(); // throws now on a malformed URL, not at every attempt
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WS === undefined) throw new TypeError('no WebSocket here: pass options.WebSocket (on Node 20, the `ws` package)');
    this.WS = WS;
    this.token = options.token;
    this.getToken = options.getToken;
    const min = positive('minReconnectDelayMs', options.minReconnectDelayMs, 500);
    const max = positive('maxReconnectDelayMs', options.maxReconnectDelayMs, 20_000);
    if (max < min) throw new RangeError('maxReconnectDelayMs must be at least minReconnectDelayMs');
    this.timeoutMs = positive('timeoutMs', options.timeoutMs, 10_000);
    this.heartbeatTimeoutMs = positive('heartbeatTimeoutMs', options.heartbeatTimeoutMs, 20_000, true);
    this.liveness = new Liveness(this.heartbeatTimeoutMs);
    this.machine = new ConnectionMachine({
      minReconnectDelayMs: min,
      maxReconnectDelayMs: max,
      random: options.random ?? Math.random,
      canRefresh: this.getToken !== undefined,
    });
  }

  get state(): State {
    return this.machine.state;
  }

  /** Starts connecting (and reconnecting). No-op unless `disconnected`. */
  connect(): void {
    if (!this.machine.start()) return;
    this.changed('disconnected');
    this.attempt();
  }

  /** Closes the connection and stops reconnecting. Subscriptions are kept for the next connect(). */
  disconnect(): void {
    const previous = this.machine.state;
    if (previous === 'disconnected') return;
    this.generation++;
    this.teardown();
    this.machine.stop();
    this.changed(previous);
    this.emit('disconnected', { code: 1000, reason: 'disconnect called', willReconnect: false });
  }

  /** Subscribes now if connected, else on the next connect; resubscribes after every reconnect. */
  subscribe(channel: string): Subscription {
    if (this.subs.has(channel)) {
      throw new HubcastError(ClientErrorCode.AlreadySubscribed, `already subscribed to ${channel}: use that subscription`);
    }
    const sub = new Subscription(channel, this.host);
    this.subs.set(channel, sub);
    if (this.machine.state === 'connected') this.sendSubscribe(sub);
    return sub;
  }

  /** Resolves on the gateway's ack. While not connected it rejects at once with code `disconnected`: nothing is queued. */
  publish(channel: string, data: unknown): Promise<void> {
    if (this.machine.state !== 'connected') {
      return Promise.reject(
        new HubcastError(ClientErrorCode.Disconnected, `not connected (${this.machine.state}): publish is refused, never queued`),
      );
    }
    let text: string;
    try {
      text = encodePublish(channel, data, this.nextId);
    } catch (err) {
      return Promise.reject(err);
    }
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) {
          reject(new HubcastError(ClientErrorCode.Timeout, `no ack within ${this.timeoutMs} ms: the message may still be delivered`));
        }
      }, this.timeoutMs);
      this.pending.set(id, { kind: 'publish', resolve, reject, timer });
      this.send(text);
    });
  }

  /** Subscription.unsubscribe(). */
  private dropSubscription(sub: Subscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    for (const [id, p] of this.pending) {
      if (p.kind === 'subscribe' && p.sub === sub) {
        clearTimeout(p.timer);
        this.pending.delete(id);
      }
    }
    if (this.machine.state === 'connected') this.send(encodeUnsubscribe(sub.channel, this.nextId++));
  }

  private attempt(): void {
    const generation = ++this.generation;
    const getToken = this.getToken;
    this.tokenFresh = false;
    if (getToken !== undefined && (this.refreshToken || this.token === undefined || isStale(this.token, Date.now()))) {
      let fetching: Promise<string>;
      try {
        fetching = getToken();
      } catch (err) {
        fetching = Promise.reject(err);
      }
      fetching.then(
        (token) => {
          if (generation !== this.generation) return;
          this.token = token;
          this.refreshToken = false;
          this.tokenFresh = true;
          this.open();
        },
        (err: unknown) => {
          if (generation !== this.generation) return;
          this.ended(LOCAL_RULES.TokenFailed, LOCAL_CLOSE_CODE, `getToken failed: ${String(err)}`, false);
        },
      );
      return;
    }
    this.open();
  }

  private open(): void {
    const url = new URL(this.url);
    if (this.token !== undefined) url.searchParams.set('token', this.token);
    let socket: SocketLike;
    try {
      socket = new this.WS(url.toString());
    } catch (err) {
      this.ended(LOCAL_RULES.SocketFailed, LOCAL_CLOSE_CODE, `new WebSocket failed: ${String(err)}`, false);
      return;
    }
    this.socket = socket;
    this.opened = false;
    this.status = undefined;
    // Every handler checks it still belongs to the current socket: an old one may still report.
    socket.onopen = () => {
      if (this.socket === socket) this.onOpen();
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.socket === socket) this.onFrame(event.data);
    };
    socket.onclose = (event: { code: number; reason: string }) => {
      if (this.socket !== socket) return;
      const rule = ruleFor({ opened: this.opened, code: event.code, status: this.status });
      this.ended(rule, event.code, event.reason, this.opened);
    };
    socket.onerror = () => undefined; // the close that follows says what happened
    // Node's `ws` tells a refused upgrade's status (401, 403, 503); browsers show only a close 1006.
    const on = (socket as { on?: (event: string, fn: (req: unknown, res: { statusCode?: number }) => void) => void }).on;
    if (typeof on === 'function') {
      on.call(socket, 'unexpected-response', (_req, res) => {
        if (this.socket === socket) this.status = res.statusCode;
        socket.close(); // ws leaves the refused handshake to this listener; close() aborts it (close 1006 follows)
      });
    }
  }

  private onOpen(): void {
    const previous = this.machine.state;
    this.opened = true;
    this.machine.opened();
    if (this.heartbeatTimeoutMs > 0) {
      this.liveness.received(Date.now());
      this.heartbeatTimer = setTimeout(this.onHeartbeat, this.heartbeatTimeoutMs / 2);
    }
    for (const sub of this.subs.values()) this.sendSubscribe(sub);
    this.changed(previous);
    this.emit('connected', { url: this.url });
  }

  private readonly onHeartbeat = (): void => {
    const check = this.liveness.check(Date.now());
    if (check.action === 'dead') {
      this.heartbeatTimer = undefined;
      this.ended(LOCAL_RULES.HeartbeatTimeout, LOCAL_CLOSE_CODE, LOCAL_RULES.HeartbeatTimeout.why, true);
      return;
    }
    if (check.action === 'ping') this.send(encodePing(this.nextId++));
    this.heartbeatTimer = setTimeout(this.onHeartbeat, check.nextInMs);
  };

  private onFrame(data: unknown): void {
    if (this.heartbeatTimeoutMs > 0) this.liveness.received(Date.now());
    const frame = parseFrame(data);
    if (frame === null) return;
    switch (frame.op) {
      case 'message': {
        const sub = typeof frame.channel === 'string' ? this.subs.get(frame.channel) : undefined;
        if (sub !== undefined) sub.handleMessage(frame);
        return;
      }
      case 'ack':
        this.onAck(frame);
        return;
      case 'error':
        this.onError(frame);
        return;
      case 'lost': {
        const sub = typeof frame.channel === 'string' ? this.subs.get(frame.channel) : undefined;
        if (sub !== undefined) sub.handleLost(frame);
        return;
      }
      default:
      // Unknown ops are ignored (the protocol may grow).
    }
  }

  private onAck(frame: Frame): void {
    const p = this.take(frame.id);
    if (p === undefined) return; // a ping, an unsubscribe, or a command that timed out
    if (p.kind === 'publish') p.resolve();
    else if (this.subs.get(p.sub.channel) === p.sub) p.sub.handleAck(frame, p.sentSince);
  }

  private onError(frame: Frame): void {
    const code = typeof frame.code === 'string' ? frame.code : 'unknown';
    const message = typeof frame.message === 'string' ? frame.message : code;
    if (frame.id === undefined) {
      // Not tied to a command (rate_limited, say): the application may want to know.
      this.emit('error', new HubcastError(code, message));
      return;
    }
    const p = this.take(frame.id);
    if (p === undefined) return; // a ping to a gateway without `ping` (unknown_op): proof of life all the same
    const error = new HubcastError(code, message);
    if (p.kind === 'publish') {
      p.reject(error);
    } else if (this.subs.get(p.sub.channel) === p.sub) {
      this.subs.delete(p.sub.channel);
      p.sub.handleRefused(error);
    }
  }

  private take(id: unknown): Pending | undefined {
    if (typeof id !== 'number') return undefined;
    const p = this.pending.get(id);
    if (p === undefined) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    return p;
  }

  private sendSubscribe(sub: Subscription): void {
    const id = this.nextId++;
    const since = sub.since();
    const timer = setTimeout(() => {
      if (this.pending.delete(id)) this.ended(LOCAL_RULES.SubscribeTimeout, LOCAL_CLOSE_CODE, LOCAL_RULES.SubscribeTimeout.why, true);
    }, this.timeoutMs);
    this.pending.set(id, { kind: 'subscribe', sub, sentSince: since !== undefined, timer });
    sub.subscribing();
    this.send(encodeSubscribe(sub.channel, id, since));
  }

  private send(text: string): void {
    const socket = this.socket;
    if (socket !== null && socket.readyState === OPEN) socket.send(text);
  }

  /** The connection or attempt ended by this rule: clean up, then reconnect or stop as the machine decides. */
  private ended(rule: Rule, code: number, reason: string, opened: boolean): void {
    const status = this.status;
    this.teardown();
    const previous = this.machine.state;
    const decision = this.machine.ended(rule, this.tokenFresh);
    const willReconnect = decision.kind === 'reconnect';
    let outcome = 'stopped';
    if (decision.kind === 'reconnect') {
      if (decision.refreshToken) this.refreshToken = true;
      outcome = `reconnecting in ${decision.delayMs} ms (attempt ${decision.attempt})`;
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = undefined;
        this.attempt();
      }, decision.delayMs);
    }
    this.changed(previous);
    // A failed attempt is not a disconnection (the 'error' below reports it), unless it stops the client.
    if (opened || !willReconnect) this.emit('disconnected', { code, reason: reason === '' ? decision.rule.why : reason, willReconnect });
    const errorCode = decision.rule.error;
    if (errorCode !== undefined) {
      const detail = status !== undefined ? `HTTP ${status}` : `close ${code}${reason === '' ? '' : ` ${reason}`}`;
      this.emit('error', new HubcastError(errorCode, `${decision.rule.why} (${detail}); ${outcome}`, status, code));
    }
  }

  /** Drops the socket and the timers; rejects what waits on this connection. */
  private teardown(): void {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null && socket.readyState <= OPEN) drop(socket);
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.reconnectTimer);
    this.heartbeatTimer = undefined;
    this.reconnectTimer = undefined;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) {
      clearTimeout(p.timer);
      if (p.kind === 'publish') {
        p.reject(new HubcastError(ClientErrorCode.Disconnected, 'the connection closed before the ack: the message may still be delivered'));
      }
    }
    for (const sub of this.subs.values()) sub.subscribing();
  }

  private changed(previous: State): void {
    const state = this.machine.state;
    if (state !== previous) this.emit('state', { state, previous });
  }
}

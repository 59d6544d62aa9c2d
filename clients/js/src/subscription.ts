// One channel the application holds: its events, and its position across reconnects.
import { Emitter } from './emitter.js';
import type { HubcastError } from './errors.js';
import { type Position, PositionTracker } from './position.js';
import type { Frame } from './protocol.js';

/** The second argument of a 'message' listener. Offset and epoch are absent when the channel has no history. */
export interface MessageContext {
  readonly channel: string;
  readonly offset?: number;
  readonly epoch?: string;
}

export interface SubscribedEvent {
  /** A `since` was sent: this subscribe followed a reconnect (or a new connect()) with a known position. */
  readonly wasRecovering: boolean;
  /**
   * true: every missed message follows, in order, then live ones. false after a recovery
   * (wasRecovering): messages may have been missed; reload the channel's state.
   */
  readonly recovered: boolean;
  /** The position the subscription continues from (undefined without history). */
  readonly position: Position | undefined;
}

export interface SubscriptionEvents {
  message: (data: unknown, context: MessageContext) => void;
  subscribed: (event: SubscribedEvent) => void;
  /** History could not fill a gap: messages were lost up to this position (a gateway `lost` frame, a hole in the offsets, or a new epoch). */
  lost: (position: Position) => void;
  /** The gateway refused the subscribe (`forbidden`, `invalid_channel`, `too_many_channels`, ...); the subscription has ended. */
  error: (error: HubcastError) => void;
  /** The subscription ended: unsubscribe(), or a refused subscribe. */
  unsubscribed: () => void;
}

export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed';

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  unsubscribe(sub: Subscription): void;
}

export class Subscription extends Emitter<SubscriptionEvents> {
  private current: SubscriptionState = 'subscribing';
  private readonly tracker = new PositionTracker();

  /** Made by HubcastClient.subscribe(). */
  constructor(
    readonly channel: string,
    private readonly host: SubscriptionHost,
  ) {
    super();
  }

  get state(): SubscriptionState {
    return this.current;
  }

  /** The last position seen on this channel (undefined before any, or without history). */
  get position(): Position | undefined {
    return this.tracker.position;
  }

  /** Stops the events and tells the gateway. Idempotent. */
  unsubscribe(): void {
    if (this.current === 'unsubscribed') return;
    this.host.unsubscribe(this);
    this.ended();
  }

  /** @internal The `since` for the next subscribe. */
  since(): Position | undefined {
    return this.tracker.since();
  }

  /** @internal A subscribe is on its way (first, or after a reconnect). */
  subscribing(): void {
    this.current = 'subscribing';
  }

  /** @internal */
  handleAck(ack: Frame, sentSince: boolean): void {
    const { wasRecovering, recovered } = this.tracker.subscribed(ack, sentSince);
    this.current = 'subscribed';
    this.emit('subscribed', { wasRecovering, recovered, position: this.tracker.position });
  }

  /** @internal On the hot path: nothing is allocated for a message delivered in order. */
  handleMessage(frame: Frame): void {
    const verdict = this.tracker.message(frame.offset, frame.epoch);
    if (verdict === 'duplicate') return;
    if (verdict === 'lost') this.emit('lost', this.tracker.position!);
    // The frame itself is the context: it has channel, offset and epoch.
    this.emit('message', frame.data, frame as MessageContext);
  }

  /** @internal The gateway's `lost` frame. */
  handleLost(frame: Frame): void {
    this.tracker.lost(frame.offset, frame.epoch);
    if (typeof frame.offset === 'number' && typeof frame.epoch === 'string') {
      this.emit('lost', { offset: frame.offset, epoch: frame.epoch });
    }
  }

  /** @internal The gateway refused the subscribe; the client has already dropped it. */
  handleRefused(error: HubcastError): void {
    this.emit('error', error);
    this.ended();
  }

  private ended(): void {
    this.current = 'unsubscribed';
    this.emit('unsubscribed');
  }
}

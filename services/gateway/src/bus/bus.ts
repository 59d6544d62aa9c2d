// The bus carries every broadcast to every gateway. The hub sees only this interface;
// memory.ts serves one process, redis.ts a cluster of gateways on one Redis, redis-cluster.ts
// a cluster of gateways on Redis Cluster.
import type { HistoryReads } from './history-reads.js';
import type { Position } from './position.js';

/** Receives what the bus carries. Payloads are the exact bytes clients receive. */
export interface BusListener {
  /** position: with history on, the message's offset and epoch (the payload already carries them). Per channel in offset order. */
  message(channel: string, payload: Buffer, position?: Position): void;
  /** History could not fill a gap on the channel: everything up to position is gone for this gateway; what follows comes next. */
  lost(channel: string, position: Position): void;
  readiness(ready: boolean): void;
}

/** Where the bus tells each publish its outcome: null once Redis (or the memory bus) took it. */
export interface PublishReceipt<T> {
  settled(token: T, err: BusUnavailableError | null): void;
}

export interface Bus {
  readonly kind: 'memory' | 'redis' | 'redis_cluster';
  /** Connected and subscribed: messages published anywhere reach this gateway. */
  readonly ready: boolean;
  /** The channels' history (HISTORY_SIZE > 0), or null when history is off. */
  readonly history: HistoryReads | null;
  setListener(listener: BusListener): void;
  start(): Promise<void>;
  /**
   * null: taken; receipt.settled(token, outcome) follows in a later turn, once per publish, in
   * publish order per channel (and overall on one Redis; Redis Cluster masters answer apart). A BusUnavailableError: refused at once (certainly not sent); the receipt is
   * not called. A receipt and a token instead of a Promise, so a publish nobody awaits allocates
   * no Promise or closure.
   */
  publish<T>(channel: string, payload: Buffer, receipt: PublishReceipt<T>, token: T): BusUnavailableError | null;
  /** The hub calls this when the first local client joins a channel. */
  subscribe(channel: string): void;
  /** The hub calls this when the last local client leaves a channel. */
  unsubscribe(channel: string): void;
  /** Resolves when messages on the channel reach this gateway (after a reconnect, once resubscribed). */
  whenLive(channel: string): Promise<void>;
  close(): Promise<void>;
}

export class BusUnavailableError extends Error {
  /**
   * false: certainly not sent. true: handed to Redis, but Redis did not confirm it in time, so it
   * may still be delivered (and a loss shows as a bus gap). Clients see two error codes, never text.
   */
  readonly sent: boolean;
  constructor(message = 'the message bus is unavailable; the message was not sent', sent = false) {
    super(message);
    this.sent = sent;
    this.name = 'BusUnavailableError';
  }
}

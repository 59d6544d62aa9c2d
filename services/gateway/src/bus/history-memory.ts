// Channel history in process, for the memory bus: the semantics of history-redis.ts without
// Redis. Per channel a ring of the last `size` messages, a top offset and an epoch; a channel
// expires ttlMs after its last publish (or after the read that created its epoch), and then
// starts over under a new epoch. Pure: the clock and the epochs are passed in.
import { type HistoryRead, type StoredMessage, isComplete } from './history-read.js';
import { type Position, positionedMessage } from './position.js';

export interface MemoryHistoryOptions {
  /** HISTORY_SIZE, at least 1 (0 means no history: the bus does not make one). */
  readonly size: number;
  /** HISTORY_TTL_S in milliseconds. */
  readonly ttlMs: number;
}

interface ChannelHistory {
  readonly epoch: string;
  top: number;
  /** Offset o sits at (o - 1) % size; only the last `size` offsets up to top are valid. Filled as published. */
  readonly ring: (StoredMessage | undefined)[];
  expiresAt: number;
}

export class MemoryHistory {
  /** In expiry order: a publish moves its channel to the end, so sweep() stops at the first live one. */
  private readonly channels = new Map<string, ChannelHistory>();

  constructor(
    private readonly options: MemoryHistoryOptions,
    private readonly newEpoch: () => string,
  ) {
    if (!Number.isSafeInteger(options.size) || options.size < 1) throw new Error('history size must be at least 1');
  }

  /** Channels holding a position (for a gauge and tests). */
  get size(): number {
    return this.channels.size;
  }

  /** Stores one message (head: its client frame without the closing brace); returns its position and client bytes. */
  publish(channel: string, head: Buffer, now: number): { readonly position: Position; readonly bytes: Buffer } {
    const history = this.position(channel, now);
    const offset = ++history.top;
    const bytes = positionedMessage(head, offset, history.epoch);
    history.ring[(offset - 1) % this.options.size] = { offset, bytes };
    history.expiresAt = now + this.options.ttlMs;
    this.channels.delete(channel);
    this.channels.set(channel, history);
    return { position: { offset, epoch: history.epoch }, bytes };
  }

  /** The channel's position; a channel never published (or expired) gets its epoch here, with offset 0. */
  top(channel: string, now: number): Position {
    const { top, epoch } = this.position(channel, now);
    return { offset: top, epoch };
  }

  /** Messages after offset (at most limit), with top and epoch of the same instant; see HistoryRead. */
  since(channel: string, offset: number, epoch: string | null, limit: number, now: number): HistoryRead {
    const history = this.position(channel, now);
    const messages: StoredMessage[] = [];
    if ((epoch === null || epoch === history.epoch) && limit > 0) {
      const first = Math.max(offset + 1, history.top - this.options.size + 1, 1);
      const last = Math.min(history.top, first + limit - 1);
      for (let o = first; o <= last; o++) messages.push(history.ring[(o - 1) % this.options.size]!);
    }
    const read = { epoch: history.epoch, top: history.top, messages };
    return { ...read, complete: isComplete(offset, epoch, read, limit) };
  }

  /** Forgets expired channels; the shell calls it now and then. Returns how many went. */
  sweep(now: number): number {
    let gone = 0;
    for (const [channel, history] of this.channels) {
      if (history.expiresAt > now) break;
      this.channels.delete(channel);
      gone++;
    }
    return gone;
  }

  private position(channel: string, now: number): ChannelHistory {
    let history = this.channels.get(channel);
    if (history !== undefined && history.expiresAt <= now) {
      this.channels.delete(channel);
      history = undefined;
    }
    if (history === undefined) {
      history = { epoch: this.newEpoch(), top: 0, ring: [], expiresAt: now + this.options.ttlMs };
      this.channels.set(channel, history);
    }
    return history;
  }
}

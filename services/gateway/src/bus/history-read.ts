// What a history read answers, for both stores (history-redis.ts, history-memory.ts), and the one
// rule for when it is complete: recovery and gap repair never act on a partial history.
import type { Position } from './position.js';

/** One stored message: its offset and the exact bytes clients receive (position tail included). */
export interface StoredMessage {
  readonly offset: number;
  readonly bytes: Buffer;
}

export interface HistoryRead {
  /** The channel's epoch now (created by the read for a channel never published, see the design note). */
  readonly epoch: string;
  /** The channel's top offset now: 0 when nothing was published in this epoch. */
  readonly top: number;
  /** Stored messages after the asked offset, in offset order, at most limit; none when the asked epoch is another. */
  readonly messages: readonly StoredMessage[];
  /** Every offset after the asked one up to top is in messages, the epoch matches, and there are at most limit. */
  readonly complete: boolean;
}

/** The reads every history store answers, top and range taken at one instant. */
export interface HistoryReader {
  top(channel: string): Promise<Position>;
  /** epoch null: no epoch to match (messages of the current epoch, complete judged on offsets). */
  since(channel: string, offset: number, epoch: string | null, limit: number): Promise<HistoryRead>;
}

/** The completeness rule: exactly offset+1 .. top, nothing missing, within limit. */
export function isComplete(
  offset: number,
  epoch: string | null,
  read: { readonly epoch: string; readonly top: number; readonly messages: readonly StoredMessage[] },
  limit: number,
): boolean {
  if (epoch !== null && epoch !== read.epoch) return false;
  const missed = read.top - offset;
  if (missed < 0 || missed > limit || read.messages.length !== missed) return false;
  for (let i = 0; i < missed; i++) if (read.messages[i]!.offset !== offset + 1 + i) return false;
  return true;
}

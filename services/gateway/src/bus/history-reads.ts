// The history reads the gateway makes (recovery, gap repair, positions, GET /history), each timed
// into hubcast_history_read_duration_seconds under its purpose. A thin shell over either store
// (history-redis.ts, or history-memory.ts through the memory bus).
import type { HistoryReadPurpose } from '../codes.js';
import type { HistoryRead, HistoryReader } from './history-read.js';
import type { Position } from './position.js';

export type ObserveHistoryRead = (purpose: HistoryReadPurpose, seconds: number) => void;

export class HistoryReads {
  constructor(
    private readonly reader: HistoryReader,
    private readonly observe: ObserveHistoryRead,
  ) {}

  /** The channel's position now (a channel never published gets its epoch, offset 0). */
  top(channel: string, purpose: HistoryReadPurpose): Promise<Position> {
    return this.timed(purpose, this.reader.top(channel));
  }

  /** Messages after offset (at most limit) with the top of the same instant; epoch null matches any. */
  since(channel: string, offset: number, epoch: string | null, limit: number, purpose: HistoryReadPurpose): Promise<HistoryRead> {
    return this.timed(purpose, this.reader.since(channel, offset, epoch, limit));
  }

  private timed<T>(purpose: HistoryReadPurpose, read: Promise<T>): Promise<T> {
    const started = performance.now();
    const observe = (): void => this.observe(purpose, (performance.now() - started) / 1000);
    // A failed read is timed too: a slow timeout is what an operator looks for.
    return read.finally(observe);
  }
}

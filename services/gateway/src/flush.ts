// Per-turn write coalescing: whatever is scheduled during one event-loop turn is flushed once,
// after that turn's I/O, by a single deferred callback. Two arrays are swapped, so a turn costs no
// allocation; a fault flushing one item is reported and the rest of the batch still runs.

export interface Flushable {
  /** Called once for each time it was scheduled; it may schedule itself again from here. */
  flushScheduled(): void;
}

/** Runs a callback after the current turn's I/O (setImmediate; a test hands in its own). */
export type Defer = (run: () => void) => void;

const afterIo: Defer = (run) => setImmediate(run);

export class FlushScheduler<T extends Flushable> {
  /** Items scheduled this turn; the caller keeps an item from being scheduled twice in one turn. */
  private dirty: T[] = [];
  private spare: T[] = [];
  private armed = false;

  constructor(
    /** Told when an item's flush threw; the item is not retried. */
    private readonly onError: (item: T, err: unknown) => void,
    private readonly defer: Defer = afterIo,
  ) {}

  /** Items waiting for the end of this turn. */
  get size(): number {
    return this.dirty.length;
  }

  schedule(item: T): void {
    this.dirty.push(item);
    if (this.armed) return;
    this.armed = true;
    this.defer(this.run);
  }

  private readonly run = (): void => {
    this.armed = false;
    // Items scheduled while this batch flushes land in the other array and arm the next turn.
    const batch = this.dirty;
    this.dirty = this.spare;
    for (let i = 0; i < batch.length; i++) {
      const item = batch[i]!;
      try {
        item.flushScheduled();
      } catch (err) {
        // A fault writing to one socket must not take the process (and every other client) down.
        this.onError(item, err);
      }
    }
    batch.length = 0;
    this.spare = batch;
  };
}

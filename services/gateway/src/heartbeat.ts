// The heartbeat spread over its interval: the clients are split into `count` slices and each tick
// of PING_INTERVAL_MS / count visits the next slice, so every client is still visited once per
// interval (what a heartbeat means is unchanged) while 10,000 pings go out as `count` small runs
// instead of one burst that holds the event loop. Pure: the gateway owns the one interval timer.

/** Slices at most: one tick per half second at the default 25 s interval. */
export const MAX_SLICES = 50;
/** Ticks no closer than this: a short interval (tests) is split less. */
export const MIN_SLICE_MS = 100;

/**
 * How many slices an interval is split into: the most, up to MAX_SLICES and with ticks of at
 * least MIN_SLICE_MS, that divides it exactly, so `count` ticks make exactly one interval.
 */
export function sliceCount(intervalMs: number): number {
  for (let k = Math.min(MAX_SLICES, Math.floor(intervalMs / MIN_SLICE_MS)); k > 1; k--) {
    if (intervalMs % k === 0) return k;
  }
  return 1;
}

export class Slices<T> {
  private readonly slices: Set<T>[];
  private readonly sliceOf = new Map<T, Set<T>>();
  /** The slice the next tick visits. */
  private cursor = 0;

  constructor(count: number) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`slice count must be a positive integer, not ${count}`);
    this.slices = Array.from({ length: count }, () => new Set<T>());
  }

  get count(): number {
    return this.slices.length;
  }

  get size(): number {
    return this.sliceOf.size;
  }

  /**
   * Puts the item in the smallest slice (the one visited last among equals, so a newcomer is not
   * visited at once), so the slices stay even however clients come and go.
   */
  add(item: T): void {
    if (this.sliceOf.has(item)) return;
    const n = this.slices.length;
    let best = this.slices[(this.cursor + n - 1) % n]!;
    for (let i = 2; i <= n; i++) {
      const slice = this.slices[(this.cursor + n - i) % n]!;
      if (slice.size < best.size) best = slice;
    }
    best.add(item);
    this.sliceOf.set(item, best);
  }

  delete(item: T): void {
    const slice = this.sliceOf.get(item);
    if (slice === undefined) return;
    slice.delete(item);
    this.sliceOf.delete(item);
  }

  /** The slice this tick visits (a live view: an item deleted while it is iterated is skipped); the next call moves on. */
  next(): ReadonlySet<T> {
    const slice = this.slices[this.cursor]!;
    this.cursor = (this.cursor + 1) % this.slices.length;
    return slice;
  }
}

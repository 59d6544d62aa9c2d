// Token expiry for every connection of a gateway in one schedule: deadlines are rounded up to a
// bucket of `resolutionMs` and ONE timer waits for the earliest bucket, instead of a timer per
// connection. JWT `exp` is in whole seconds, so with 1 s buckets a connection still expires at its
// `exp` exactly (plus the timer's lateness) and every token with the same `exp` shares a bucket.

/** setTimeout's longest delay; a later bucket is waited for in steps of it. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class ExpirySchedule<T> {
  /** Bucket time (a multiple of the resolution, ms since the epoch) to the items due then. */
  private readonly buckets = new Map<number, Set<T>>();
  private readonly bucketOf = new Map<T, number>();
  /** Min-heap of bucket times. A bucket emptied by delete() leaves its time here until it is popped or the heap is rebuilt. */
  private heap: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** The bucket time the timer waits for (Infinity while none is armed). */
  private armedFor = Number.POSITIVE_INFINITY;

  constructor(
    private readonly resolutionMs: number,
    /** Called once per item whose deadline has passed, after it has left the schedule. */
    private readonly expire: (item: T) => void,
  ) {}

  /** Items waiting for their deadline. */
  get size(): number {
    return this.bucketOf.size;
  }

  /** Items' deadlines are rounded up to this: an item expires at most this late. */
  get resolution(): number {
    return this.resolutionMs;
  }

  /** Expires `item` at `deadline` (ms since the epoch) rounded up to the resolution; an item already scheduled moves. */
  add(item: T, deadline: number): void {
    if (!Number.isFinite(deadline)) return;
    this.delete(item);
    const at = Math.ceil(deadline / this.resolutionMs) * this.resolutionMs;
    let bucket = this.buckets.get(at);
    if (bucket === undefined) {
      bucket = new Set();
      this.buckets.set(at, bucket);
      push(this.heap, at);
    }
    bucket.add(item);
    this.bucketOf.set(item, at);
    if (at < this.armedFor) this.arm();
  }

  /** Takes the item out (its connection closed); nothing happens for an item not scheduled. */
  delete(item: T): void {
    const at = this.bucketOf.get(item);
    if (at === undefined) return;
    this.bucketOf.delete(item);
    const bucket = this.buckets.get(at)!;
    bucket.delete(item);
    if (bucket.size > 0) return;
    this.buckets.delete(at);
    // Times of emptied buckets stay in the heap; past twice the live ones it is rebuilt, so
    // connections that come and go with the same `exp` cannot grow it.
    if (this.heap.length > 2 * this.buckets.size + 16) this.heap = heapify([...this.buckets.keys()]);
    if (this.buckets.size === 0) this.disarm();
    // Otherwise the timer may wake for an empty bucket: it finds nothing due and re-arms.
  }

  /** Clears the timer and forgets every item (shutdown). */
  stop(): void {
    this.disarm();
    this.buckets.clear();
    this.bucketOf.clear();
    this.heap = [];
  }

  /** Arms the one timer for the earliest live bucket, or none when empty. */
  private arm(): void {
    const heap = this.heap;
    while (heap.length > 0 && !this.buckets.has(heap[0]!)) pop(heap);
    this.disarm();
    if (heap.length === 0) return;
    const at = heap[0]!;
    this.armedFor = at;
    this.timer = setTimeout(this.fire, Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())));
    // The server keeps the process alive, not a token that expires next month.
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    // this.heap, not a local: an expire() that closes a connection may delete() and so rebuild it.
    while (this.heap.length > 0 && this.heap[0]! <= now) {
      const at = pop(this.heap);
      const bucket = this.buckets.get(at);
      if (bucket === undefined) continue; // emptied, or a duplicate of a bucket already expired
      // The bucket stays in the map while it runs: an expire() that delete()s another of its items
      // takes that one out before its turn, as at any other time.
      for (const item of bucket) {
        bucket.delete(item);
        this.bucketOf.delete(item);
        this.expire(item);
      }
      this.buckets.delete(at);
    }
    this.arm();
  };
}

function push(heap: number[], value: number): void {
  let i = heap.length;
  heap.push(value);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]! <= value) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = value;
}

function pop(heap: number[]): number {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) siftDown(heap, 0, last);
  return top;
}

function siftDown(heap: number[], start: number, value: number): void {
  const n = heap.length;
  let i = start;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap[child + 1]! < heap[child]!) child++;
    if (heap[child]! >= value) break;
    heap[i] = heap[child]!;
    i = child;
  }
  heap[i] = value;
}

function heapify(values: number[]): number[] {
  for (let i = (values.length >> 1) - 1; i >= 0; i--) siftDown(values, i, values[i]!);
  return values;
}

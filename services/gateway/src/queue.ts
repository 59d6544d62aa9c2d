// A FIFO of frames bounded by both message count and bytes. O(1) push and shift on a ring buffer
// that is allocated on first use and grows by doubling, so an idle client costs no queue at all.

const INITIAL_CAPACITY = 16;

export class BoundedQueue {
  private ring: (Buffer | undefined)[] | null = null;
  private head = 0;
  private count = 0;
  private bytes = 0;

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {}

  get length(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.bytes;
  }

  /** Slots the ring holds now (0 when none is allocated): what an idle client costs. */
  get capacity(): number {
    return this.ring === null ? 0 : this.ring.length;
  }

  /** Whether a frame of this size fits without removing anything. */
  fits(size: number): boolean {
    return this.count < this.maxMessages && this.bytes + size <= this.maxBytes;
  }

  /** Whether a frame of this size could ever fit, even in an empty queue. */
  canEverFit(size: number): boolean {
    return size <= this.maxBytes;
  }

  /** Appends a frame; the caller has checked fits(). */
  push(frame: Buffer): void {
    if (this.ring === null) {
      this.ring = new Array<Buffer | undefined>(Math.min(INITIAL_CAPACITY, this.maxMessages));
    } else if (this.count === this.ring.length) {
      this.grow(this.ring);
    }
    const ring = this.ring!;
    ring[(this.head + this.count) % ring.length] = frame;
    this.count++;
    this.bytes += frame.length;
  }

  /**
   * Moves frames from the front of this queue to the back of `target` while they fit there, in
   * order; returns how many moved. An empty target takes the front frame even past its byte bound,
   * so one oversized frame cannot stall what waits behind it (deliver() sends such a frame alone).
   */
  moveInto(target: BoundedQueue): number {
    let moved = 0;
    while (this.count > 0) {
      const size = this.ring![this.head]!.length;
      if (target.count > 0 && !target.fits(size)) break;
      target.push(this.shift()!);
      moved++;
    }
    return moved;
  }

  /** Removes and returns the oldest frame, or undefined when empty. */
  shift(): Buffer | undefined {
    if (this.count === 0 || this.ring === null) return undefined;
    const frame = this.ring[this.head];
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.ring.length;
    this.count--;
    this.bytes -= frame!.length;
    return frame;
  }

  private grow(old: (Buffer | undefined)[]): void {
    const ring = new Array<Buffer | undefined>(Math.min(old.length * 2, this.maxMessages));
    for (let i = 0; i < this.count; i++) ring[i] = old[(this.head + i) % old.length];
    this.ring = ring;
    this.head = 0;
  }

  /** Releases the ring of an empty queue; the next push allocates a small one again. */
  release(): void {
    if (this.count !== 0) return;
    this.ring = null;
    // The next ring starts small: a head left from the old, larger one would point past its end.
    this.head = 0;
  }

  /** Empties the queue and releases its memory. Returns how many frames were discarded. */
  clear(): number {
    const discarded = this.count;
    this.ring = null;
    this.head = 0;
    this.count = 0;
    this.bytes = 0;
    return discarded;
  }
}

/** What a client may hold behind its full send queue while a recovery replay is paced into it. */
export interface BacklogBounds {
  readonly maxMessages: number;
  readonly maxBytes: number;
}

/**
 * The backlog's bound: a whole replay (RECOVERY_MAX_MESSAGES frames of at most MAX_MESSAGE_BYTES
 * each, plus frame headers) and then as much live traffic again as the queue itself holds, so a
 * full replay is never cut and a client that stops reading still meets the overflow policy.
 */
export function backlogBounds(queueMaxMessages: number, queueMaxBytes: number, recoveryMaxMessages: number, maxMessageBytes: number): BacklogBounds {
  return {
    maxMessages: recoveryMaxMessages + queueMaxMessages,
    maxBytes: recoveryMaxMessages * (maxMessageBytes + FRAME_OVERHEAD_BYTES) + queueMaxBytes,
  };
}

/** A frame's header plus the envelope a message frame adds around its data (offset, epoch, channel name): a generous allowance. */
const FRAME_OVERHEAD_BYTES = 256;

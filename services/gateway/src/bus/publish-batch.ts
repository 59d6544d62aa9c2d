// The publishes of one event-loop turn, collected so the Redis bus writes them as one command
// (measured against one command per publish and ioredis auto-pipelining: docs/benchmarks.md).
// Entries sit in parallel arrays, so a publish allocates no Promise, closure or entry object;
// the batch is written once per turn (one setImmediate per turn), split where it reaches its
// count or byte cap. The writer (the I/O shell) settles the whole batch with its one outcome, and
// each entry learns it on its own receipt, in publish order.
import type { BusUnavailableError, PublishReceipt } from './bus.js';

export interface BatchLimits {
  /** Messages per batch: one script call's keys and arguments stay bounded. */
  readonly maxCount: number;
  /** Message bytes per batch: one reply's wait stays bounded. */
  readonly maxBytes: number;
}

/** Measured on the 2-core machine: past ~100 messages a batch gains nothing per message; 256 leaves headroom. */
export const BATCH_LIMITS: BatchLimits = { maxCount: 256, maxBytes: 256 * 1024 };

/** One write's worth of publishes: the channel and the bytes for Redis of each, and who to tell. */
export class PublishBatch {
  readonly channels: string[] = [];
  readonly messages: Buffer[] = [];
  private readonly receipts: PublishReceipt<unknown>[] = [];
  private readonly tokens: unknown[] = [];
  private settledOnce = false;
  bytes = 0;

  get length(): number {
    return this.channels.length;
  }

  push<T>(channel: string, message: Buffer, receipt: PublishReceipt<T>, token: T): void {
    this.channels.push(channel);
    this.messages.push(message);
    this.receipts.push(receipt as PublishReceipt<unknown>);
    this.tokens.push(token);
    this.bytes += message.length;
  }

  /**
   * The batch cut where the key changes (on Redis Cluster the slot: one script call's keys must
   * share it), into runs of consecutive entries in publish order. Runs rather than one group per
   * key: two slots on one master then still get their commands in publish order. The batch
   * itself when every entry has the same key.
   */
  runsBy(keyOf: (channel: string) => number): PublishBatch[] {
    const runs: PublishBatch[] = [];
    let run: PublishBatch | null = null;
    let last = Number.NaN;
    for (let i = 0; i < this.channels.length; i++) {
      const key = keyOf(this.channels[i]!);
      if (run === null || key !== last) {
        run = new PublishBatch();
        runs.push(run);
        last = key;
      }
      run.push(this.channels[i]!, this.messages[i]!, this.receipts[i]!, this.tokens[i]);
    }
    return runs.length <= 1 ? [this] : runs;
  }

  /** Every entry gets the batch's one outcome (one script call: all ran, or none is confirmed). Only the first call counts. */
  settle(err: BusUnavailableError | null): void {
    if (this.settledOnce) return;
    this.settledOnce = true;
    for (let i = 0; i < this.receipts.length; i++) this.receipts[i]!.settled(this.tokens[i], err);
  }
}

/** The I/O shell: sends the batch as one command and settles it, at once or when Redis answers. */
export interface BatchWriter {
  write(batch: PublishBatch): void;
}

export class PublishBatcher {
  private open: PublishBatch | null = null;
  /** Batches that reached a cap this turn, written first at the flush, in order. */
  private full: PublishBatch[] = [];
  private scheduled = false;

  constructor(
    private readonly writer: BatchWriter,
    private readonly limits: BatchLimits = BATCH_LIMITS,
  ) {}

  /** Queues one publish for this turn's write. Nothing is written or settled during add itself. */
  add<T>(channel: string, message: Buffer, receipt: PublishReceipt<T>, token: T): void {
    const batch = (this.open ??= new PublishBatch());
    batch.push(channel, message, receipt, token);
    if (batch.length >= this.limits.maxCount || batch.bytes >= this.limits.maxBytes) {
      this.full.push(batch);
      this.open = null;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      // After this turn's I/O callbacks: every frame read in the same poll phase joins the batch.
      setImmediate(this.flush);
    }
  }

  /** Writes what is queued, oldest first (the turn's end). */
  readonly flush = (): void => {
    this.scheduled = false;
    const full = this.full;
    const open = this.open;
    this.open = null;
    if (full.length > 0) {
      this.full = [];
      for (const batch of full) this.writer.write(batch);
    }
    if (open !== null) this.writer.write(open);
  };
}

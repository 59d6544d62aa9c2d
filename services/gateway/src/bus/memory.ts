// The in-process bus: one gateway, no Redis. Publishing delivers synchronously, in order. With
// history on (HISTORY_SIZE > 0) each publish goes through MemoryHistory first, so messages carry
// positions and a returning client recovers as it would on Redis; nothing can be missed in
// process, so there is no gap repair here.
import { type Bus, type BusListener, BusUnavailableError, type PublishReceipt } from './bus.js';
import { MemoryHistory } from './history-memory.js';
import type { HistoryRead, HistoryReader } from './history-read.js';
import { type ObserveHistoryRead, HistoryReads } from './history-reads.js';
import { EpochSource, type Position, messageHead } from './position.js';
import { PublishBatcher } from './publish-batch.js';

export interface MemoryBusOptions {
  /** HISTORY_SIZE and HISTORY_TTL_S; null: history off. */
  readonly history: { readonly size: number; readonly ttlS: number } | null;
  readonly observeHistoryRead?: ObserveHistoryRead;
}

/** Expired channels are swept this often at most (and at least once per HISTORY_TTL_S). */
const MAX_SWEEP_INTERVAL_MS = 10_000;

/** MemoryHistory behind the asynchronous reader interface, with the wall clock. */
class MemoryReader implements HistoryReader {
  constructor(private readonly store: MemoryHistory) {}

  top(channel: string): Promise<Position> {
    return Promise.resolve(this.store.top(channel, Date.now()));
  }

  since(channel: string, offset: number, epoch: string | null, limit: number): Promise<HistoryRead> {
    return Promise.resolve(this.store.since(channel, offset, epoch, limit, Date.now()));
  }
}

export class MemoryBus implements Bus {
  readonly kind = 'memory';
  readonly history: HistoryReads | null;
  private readonly store: MemoryHistory | null;
  private readonly sweeper: NodeJS.Timeout | null;
  private listener: BusListener | null = null;
  private readonly channels = new Set<string>();
  private closed = false;
  /** Delivered at once, settled at the turn's end as a Redis bus settles: the same receipt contract, no Promise per publish. */
  private readonly receipts = new PublishBatcher({ write: (batch) => batch.settle(null) });

  constructor(options: MemoryBusOptions = { history: null }) {
    const { history } = options;
    if (history === null) {
      this.store = null;
      this.history = null;
      this.sweeper = null;
      return;
    }
    const ttlMs = history.ttlS * 1000;
    const epochs = new EpochSource();
    const store = new MemoryHistory({ size: history.size, ttlMs }, () => epochs.next());
    this.store = store;
    this.history = new HistoryReads(new MemoryReader(store), options.observeHistoryRead ?? (() => undefined));
    // Without the sweep an expired channel would hold its ring until it is touched again.
    this.sweeper = setInterval(() => store.sweep(Date.now()), Math.min(ttlMs, MAX_SWEEP_INTERVAL_MS));
    this.sweeper.unref();
  }

  /** Always ready until closed: nothing can fail in between. */
  get ready(): boolean {
    return !this.closed;
  }

  setListener(listener: BusListener): void {
    this.listener = listener;
  }

  async start(): Promise<void> {
    this.listener?.readiness(true);
  }

  publish<T>(channel: string, payload: Buffer, receipt: PublishReceipt<T>, token: T): BusUnavailableError | null {
    // Closed, like a Redis bus that quit: refused, certainly not sent (the same contract).
    if (this.closed) return new BusUnavailableError();
    if (this.store === null) {
      if (this.channels.has(channel)) this.listener?.message(channel, payload);
    } else {
      const { position, bytes } = this.store.publish(channel, messageHead(payload), Date.now());
      if (this.channels.has(channel)) this.listener?.message(channel, bytes, position);
    }
    this.receipts.add(channel, payload, receipt, token);
    return null;
  }

  subscribe(channel: string): void {
    if (!this.closed) this.channels.add(channel);
  }

  unsubscribe(channel: string): void {
    this.channels.delete(channel);
  }

  whenLive(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.channels.clear();
    this.listener?.readiness(false);
  }
}


// The in-process bus: one gateway, no Redis. Publishing delivers synchronously, in order.
import { type Bus, type BusListener, BusUnavailableError } from './bus.js';

export class MemoryBus implements Bus {
  readonly kind = 'memory';
  private listener: BusListener | null = null;
  private readonly channels = new Set<string>();
  private closed = false;

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

  publish(channel: string, payload: Buffer): Promise<void> {
    // Closed, like a Redis bus that quit: refused, certainly not sent (the same contract).
    if (this.closed) return Promise.reject(new BusUnavailableError());
    if (this.channels.has(channel)) this.listener?.message(channel, payload);
    return Promise.resolve();
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
    this.channels.clear();
    this.listener?.readiness(false);
  }
}

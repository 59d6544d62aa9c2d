// The in-process bus: one gateway, no Redis. Publishing delivers synchronously, in order.
import type { Bus, BusListener } from './bus.js';

export class MemoryBus implements Bus {
  readonly kind = 'memory';
  readonly ready = true;
  private listener: BusListener | null = null;
  private readonly channels = new Set<string>();

  setListener(listener: BusListener): void {
    this.listener = listener;
  }

  async start(): Promise<void> {
    this.listener?.readiness(true);
  }

  publish(channel: string, payload: Buffer): Promise<void> {
    if (this.channels.has(channel)) this.listener?.message(channel, payload);
    return Promise.resolve();
  }

  subscribe(channel: string): void {
    this.channels.add(channel);
  }

  unsubscribe(channel: string): void {
    this.channels.delete(channel);
  }

  whenLive(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.channels.clear();
  }
}

// A bus publish as a Promise, for tests that await each outcome (the gateway itself passes a
// receipt and allocates no Promise per publish): resolves once the bus took the message, rejects
// with its BusUnavailableError otherwise, at once or when the bus settles it.
import type { Bus, PublishReceipt } from '../../services/gateway/src/bus/bus.js';

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

const AWAITED: PublishReceipt<Waiter> = {
  settled: (waiter, err) => (err === null ? waiter.resolve() : waiter.reject(err)),
};

export function publishOn(bus: Bus, channel: string, payload: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const refused = bus.publish(channel, payload, AWAITED, { resolve, reject });
    if (refused !== null) reject(refused);
  });
}

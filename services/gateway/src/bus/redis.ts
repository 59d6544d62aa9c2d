// The Redis bus: one publisher and one subscriber connection (a subscribed connection can run
// no other command). Each hub channel C maps to the Redis channel REDIS_PREFIX + C.
//
// Neither connection queues commands while Redis is down: a publish is rejected at once, and
// the subscriber resubscribes its whole channel set itself on every (re)connect, so readiness
// can mean "every channel is live again", not merely "the TCP connection is back".
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { BusConnection, Stats } from '../stats.js';
import { type Bus, type BusListener, BusUnavailableError } from './bus.js';

export interface RedisBusOptions {
  readonly url: string;
  readonly prefix: string;
}

/** Channels per SUBSCRIBE command when resubscribing a large set. */
const RESUBSCRIBE_BATCH = 1000;
/** How long quit() may take before the connection is dropped. */
const QUIT_TIMEOUT_MS = 1000;

function retryDelay(attempt: number): number {
  // 50 ms, 100 ms, 200 ms ... capped at 2 s: quick after a blip, gentle during an outage.
  return Math.min(50 * 2 ** Math.min(attempt - 1, 6), 2000);
}

const COMMON: RedisOptions = {
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  autoResubscribe: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 5000,
  retryStrategy: retryDelay,
};

interface Waiters {
  resolvers: (() => void)[];
}

export class RedisBus implements Bus {
  readonly kind = 'redis';
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private listener: BusListener | null = null;
  /** Every channel the hub wants, live or not. */
  private readonly wanted = new Set<string>();
  /** Channels confirmed by Redis on the current subscriber connection. */
  private readonly live = new Set<string>();
  private readonly waiting = new Map<string, Waiters>();
  private publisherReady = false;
  private subscriberReady = false;
  private closed = false;
  private lastReady = false;
  private readonly prefixLength: number;

  constructor(
    private readonly options: RedisBusOptions,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {
    this.prefixLength = Buffer.byteLength(options.prefix);
    this.publisher = new Redis(options.url, { ...COMMON, connectionName: 'hubcast-pub', lazyConnect: true });
    this.subscriber = new Redis(options.url, { ...COMMON, connectionName: 'hubcast-sub', lazyConnect: true });
    this.watch(this.publisher, 'publisher');
    this.watch(this.subscriber, 'subscriber');
    this.subscriber.on('messageBuffer', this.onMessage);
  }

  get ready(): boolean {
    return this.publisherReady && this.subscriberReady && !this.closed;
  }

  setListener(listener: BusListener): void {
    this.listener = listener;
  }

  async start(): Promise<void> {
    // A Redis that is down at start is not fatal: the gateway serves /healthz, answers 503 on
    // /readyz and keeps retrying, as it does for an outage later on.
    for (const conn of [this.publisher, this.subscriber]) {
      conn.connect().catch(() => undefined);
    }
  }

  publish(channel: string, payload: Buffer): Promise<void> {
    if (!this.publisherReady || this.closed) return Promise.reject(new BusUnavailableError());
    return this.publisher.publish(this.options.prefix + channel, payload).then(
      () => undefined,
      (err: Error) => Promise.reject(new BusUnavailableError(`the message bus failed: ${err.message}`)),
    );
  }

  subscribe(channel: string): void {
    this.wanted.add(channel);
    if (this.subscriber.status === 'ready') this.sendSubscribe([channel]);
  }

  unsubscribe(channel: string): void {
    this.wanted.delete(channel);
    this.live.delete(channel);
    this.release(channel);
    if (this.subscriber.status === 'ready') {
      this.subscriber.unsubscribe(this.options.prefix + channel).catch((err: Error) => {
        this.log.warn({ err: err.message, channel }, 'redis unsubscribe failed; resynced on reconnect');
      });
    }
  }

  whenLive(channel: string): Promise<void> {
    if (this.closed || !this.wanted.has(channel) || this.live.has(channel)) return Promise.resolve();
    let entry = this.waiting.get(channel);
    if (entry === undefined) {
      entry = { resolvers: [] };
      this.waiting.set(channel, entry);
    }
    const { resolvers } = entry;
    return new Promise((resolve) => resolvers.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const channel of [...this.waiting.keys()]) this.release(channel);
    this.emitReadiness();
    await Promise.all([quit(this.publisher), quit(this.subscriber)]);
  }

  private readonly onMessage = (channel: Buffer, payload: Buffer): void => {
    // Hub channel names are ASCII, so latin1 decoding is exact and cheaper than UTF-8.
    this.listener?.message(channel.toString('latin1', this.prefixLength), payload);
  };

  private sendSubscribe(channels: string[]): Promise<void> {
    const prefix = this.options.prefix;
    return this.subscriber.subscribe(...channels.map((c) => prefix + c)).then(
      () => {
        for (const channel of channels) {
          if (!this.wanted.has(channel)) continue;
          this.live.add(channel);
          this.release(channel);
        }
      },
      (err: Error) => {
        // The connection dropped mid-command; the next 'ready' resubscribes everything.
        this.log.warn({ err: err.message }, 'redis subscribe failed; retried on reconnect');
      },
    );
  }

  private release(channel: string): void {
    const entry = this.waiting.get(channel);
    if (entry === undefined) return;
    this.waiting.delete(channel);
    for (const resolve of entry.resolvers) resolve();
  }

  private async resubscribeAll(): Promise<void> {
    const channels = [...this.wanted];
    for (let i = 0; i < channels.length; i += RESUBSCRIBE_BATCH) {
      await this.sendSubscribe(channels.slice(i, i + RESUBSCRIBE_BATCH));
      if (this.subscriber.status !== 'ready') return;
    }
    if (this.subscriber.status !== 'ready') return;
    this.subscriberReady = true;
    this.stats.busConnected.subscriber = 1;
    this.log.info({ channels: channels.length }, 'redis subscriber ready; channels resubscribed');
    this.emitReadiness();
  }

  private watch(conn: Redis, role: BusConnection): void {
    let everReady = false;
    conn.on('ready', () => {
      if (role === 'publisher') {
        this.publisherReady = true;
        this.stats.busConnected.publisher = 1;
        this.log.info('redis publisher ready');
        this.emitReadiness();
      } else {
        void this.resubscribeAll();
      }
      everReady = true;
    });
    conn.on('close', () => {
      if (role === 'publisher') {
        this.publisherReady = false;
      } else {
        this.subscriberReady = false;
        this.live.clear();
      }
      this.stats.busConnected[role] = 0;
      if (everReady && !this.closed) this.log.warn({ role }, 'redis connection lost');
      this.emitReadiness();
    });
    conn.on('reconnecting', () => {
      this.stats.busReconnects[role]++;
    });
    // ioredis reports each failed attempt; the state change above is what matters, so keep this quiet.
    conn.on('error', (err: Error) => {
      this.log.debug({ role, err: err.message }, 'redis connection error');
    });
  }

  private emitReadiness(): void {
    const ready = this.ready;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    this.listener?.readiness(ready);
  }
}

async function quit(conn: Redis): Promise<void> {
  if (conn.status !== 'ready') {
    conn.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
  });
  await Promise.race([conn.quit().then(() => undefined, () => undefined), timeout]);
  clearTimeout(timer);
  conn.disconnect();
}

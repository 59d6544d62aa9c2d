// The Redis bus: one publisher and one subscriber connection (a subscribed connection can run
// no other command). Each hub channel C maps to the Redis channel REDIS_PREFIX + C.
//
// Neither connection queues commands while Redis is down: a publish is rejected at once, and
// the subscriber resubscribes its whole channel set itself on every (re)connect, and sends again
// any SUBSCRIBE that failed, so readiness can mean "every channel is live again", not merely "the
// TCP connection is back". A Redis that keeps its sockets open but stops answering is caught by a
// health PING on both connections; one whose messages stop reaching the subscriber, by the probe
// (probe.ts).
//
// Every message carries an envelope (envelope.ts): this process's origin id and a sequence per
// (origin, channel), so receivers count gaps and drop duplicates (sequence.ts).
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { BusConnection } from '../codes.js';
import type { Stats } from '../stats.js';
import { type Bus, type BusListener, BusUnavailableError } from './bus.js';
import { ENVELOPE_BYTES, envelopePayload, hasEnvelope, originHex, randomOrigin } from './envelope.js';
import { Probe } from './probe.js';
import { SequenceStamper, SequenceTracker } from './sequence.js';

export interface RedisBusOptions {
  readonly url: string;
  readonly prefix: string;
  /** A command (publish, subscribe, health PING) unanswered this long fails. */
  readonly timeoutMs: number;
  /** How often the pub/sub probe is published. */
  readonly probeIntervalMs: number;
  /** A probe not back on the subscriber within this long marks the bus not ready. */
  readonly probeTimeoutMs: number;
}

/** Error messages of a failed publish: certainly not sent, or sent but not confirmed. */
export const NOT_SENT = 'the message bus is unavailable; the message was not sent';
export const UNCONFIRMED = 'Redis did not confirm the message; it may still be delivered';

/** Channels per SUBSCRIBE command when resubscribing a large set. */
const RESUBSCRIBE_BATCH = 1000;
/** How long quit() may take before the connection is dropped. */
const QUIT_TIMEOUT_MS = 1000;
/** How often each connection is PINGed. */
const HEALTH_INTERVAL_MS = 1000;

function retryDelay(attempt: number): number {
  // 50 ms, 100 ms, 200 ms ... capped at 2 s: quick after a blip, gentle during an outage.
  return Math.min(50 * 2 ** Math.min(attempt - 1, 6), 2000);
}

interface Connection {
  readonly role: BusConnection;
  readonly redis: Redis;
  /** TCP up and past ioredis's ready check. */
  up: boolean;
  /** The last health PING was answered in time. */
  answering: boolean;
  pinging: boolean;
}

export class RedisBus implements Bus {
  readonly kind = 'redis';
  /** This process's origin id on the bus; a restarted gateway is a new origin. */
  readonly origin = randomOrigin(randomBytes(6));
  private readonly pub: Connection;
  private readonly sub: Connection;
  private listener: BusListener | null = null;
  /**
   * Every channel the hub wants, with the number of the subscribe call that wanted it: a
   * SUBSCRIBE reply marks a channel live only if no unsubscribe/subscribe came after it.
   */
  private readonly wanted = new Map<string, number>();
  private subscribeSeq = 0;
  /** Channels confirmed by Redis on the current subscriber connection. */
  private readonly live = new Set<string>();
  private readonly waiting = new Map<string, (() => void)[]>();
  /** The whole wanted set has been subscribed on the current subscriber connection. */
  private resubscribed = false;
  /** Channels whose SUBSCRIBE failed on the current subscriber connection: the health check retries them. */
  private readonly retry = new Set<string>();
  /** Counts subscriber connections: a reply or failure from an earlier one changes nothing. */
  private subEpoch = 0;
  /** A resubscribe is running; there is never more than one. */
  private syncing = false;
  /** Another resubscribe was asked for while one ran (a reconnect meanwhile): run once more. */
  private syncAgain = false;
  private closed = false;
  private lastReady = false;
  private readonly prefixLength: number;
  private readonly health: NodeJS.Timeout;
  private readonly stamper = new SequenceStamper(this.origin);
  private readonly tracker: SequenceTracker;
  private readonly probe: Probe;
  /** The probe's channel, named outside the hub's channel alphabet so no client can collide with it. */
  private readonly probeChannel = `#probe.${originHex(this.origin)}`;
  private gapsLogged = 0;

  constructor(
    private readonly options: RedisBusOptions,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {
    this.prefixLength = Buffer.byteLength(options.prefix);
    const common: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 5000,
      commandTimeout: options.timeoutMs,
      keepAlive: 5000,
      retryStrategy: retryDelay,
    };
    this.pub = this.connection('publisher', new Redis(options.url, { ...common, connectionName: 'hubcast-pub' }));
    this.sub = this.connection('subscriber', new Redis(options.url, { ...common, connectionName: 'hubcast-sub' }));
    this.sub.redis.on('messageBuffer', this.onMessage);
    this.health = setInterval(() => this.checkHealth(), HEALTH_INTERVAL_MS);
    this.health.unref();
    this.tracker = new SequenceTracker(stats);
    this.probe = new Probe({ intervalMs: options.probeIntervalMs, timeoutMs: options.probeTimeoutMs }, {
      canSend: () => this.canPublish() && this.sub.up && this.resubscribed,
      send: (payload) => {
        this.pub.redis.publish(this.options.prefix + this.probeChannel, payload).catch(() => undefined);
      },
      changed: (ok, why) => {
        if (ok) this.log.info('bus probe came back: messages flow');
        else if (why === 'timeout') this.log.warn({ timeoutMs: options.probeTimeoutMs }, 'bus probe did not come back: subscriber starved');
        this.emitReadiness();
      },
    }, stats);
  }

  get ready(): boolean {
    const { sub } = this;
    return this.canPublish() && sub.up && sub.answering && this.resubscribed && this.probe.isOk;
  }

  setListener(listener: BusListener): void {
    this.listener = listener;
  }

  async start(): Promise<void> {
    // A Redis that is down at start is not fatal: the gateway serves /healthz, answers 503 on
    // /readyz and keeps retrying, as it does for an outage later on.
    this.probe.start();
    for (const conn of [this.pub, this.sub]) conn.redis.connect().catch(() => undefined);
  }

  publish(channel: string, payload: Buffer): Promise<void> {
    if (!this.canPublish()) return Promise.reject(new BusUnavailableError(NOT_SENT));
    // One copy per publish (not per delivery): the envelope goes in front of the payload.
    const message = Buffer.allocUnsafe(ENVELOPE_BYTES + payload.length);
    this.stamper.stamp(channel, message);
    payload.copy(message, ENVELOPE_BYTES);
    // From here the sequence number is spent: if Redis took the message but the reply was lost,
    // subscribers get it; if not, they count it as a gap. Either way the client is told so.
    return this.pub.redis.publish(this.options.prefix + channel, message).then(
      () => undefined,
      (err: Error) => Promise.reject(new BusUnavailableError(`${UNCONFIRMED} (${err.message})`, true)),
    );
  }

  subscribe(channel: string): void {
    this.wanted.set(channel, ++this.subscribeSeq);
    this.tracker.hold(channel); // tracked from the SUBSCRIBE reply on (sendSubscribe)
    if (this.sub.redis.status === 'ready') void this.sendSubscribe([channel]);
  }

  unsubscribe(channel: string): void {
    this.wanted.delete(channel);
    this.tracker.forget(channel);
    this.live.delete(channel);
    this.retry.delete(channel);
    this.release(channel);
    if (this.sub.redis.status === 'ready') {
      this.sub.redis.unsubscribe(this.options.prefix + channel).catch((err: Error) => {
        this.log.warn({ err: err.message, channel }, 'redis unsubscribe failed; resynced on reconnect');
      });
    }
  }

  whenLive(channel: string): Promise<void> {
    if (this.closed || !this.wanted.has(channel) || this.live.has(channel)) return Promise.resolve();
    let resolvers = this.waiting.get(channel);
    if (resolvers === undefined) {
      resolvers = [];
      this.waiting.set(channel, resolvers);
    }
    const list = resolvers;
    return new Promise((resolve) => list.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.health);
    this.probe.stop();
    for (const channel of [...this.waiting.keys()]) this.release(channel);
    this.emitReadiness();
    await Promise.all([quit(this.pub.redis), quit(this.sub.redis)]);
  }

  private readonly onMessage = (redisChannel: Buffer, message: Buffer): void => {
    // Hub channel names are ASCII, so latin1 decoding is exact and cheaper than UTF-8.
    const channel = redisChannel.toString('latin1', this.prefixLength);
    if (!hasEnvelope(message)) {
      if (channel === this.probeChannel) this.probe.received(message);
      else this.stats.busInvalid++; // not from a gateway of this version: never shown to clients
      return;
    }
    if (!this.tracker.accept(channel, message)) return; // a duplicate: delivered once already
    this.listener?.message(channel, envelopePayload(message));
  };

  private canPublish(): boolean {
    return this.pub.up && this.pub.answering && !this.closed;
  }

  /** Resolves true when Redis confirmed the batch on the current subscriber connection. */
  private sendSubscribe(channels: string[]): Promise<boolean> {
    const prefix = this.options.prefix;
    const epoch = this.subEpoch;
    const seqs = channels.map((c) => this.wanted.get(c));
    return this.sub.redis.subscribe(...channels.map((c) => prefix + c)).then(
      () => {
        if (epoch !== this.subEpoch) return false;
        channels.forEach((channel, i) => {
          if (this.wanted.get(channel) !== seqs[i]) return; // unsubscribed (and maybe re-wanted) since
          this.live.add(channel);
          this.retry.delete(channel);
          // This runs a microtask after the reply was parsed, so messages that followed it in the
          // same read were delivered untracked; none can be missing in between (one TCP stream),
          // so the baseline is merely taken a little later.
          this.tracker.watch(channel);
          this.release(channel);
        });
        return true;
      },
      (err: Error) => {
        // Timed out (Redis stalled) or dropped. On a connection that is still up, nothing else
        // would send it again: Redis may yet act on it, but ioredis discards the late reply, so
        // the channel would never go live. The health check retries it within a second. A lost
        // connection is resubscribed in full on reconnect.
        if (epoch === this.subEpoch && this.sub.up) {
          channels.forEach((channel, i) => {
            if (this.wanted.get(channel) === seqs[i] && !this.live.has(channel)) this.retry.add(channel);
          });
        }
        this.log.warn({ err: err.message, channels: channels.length }, 'redis subscribe failed; retried');
        return false;
      },
    );
  }

  private release(channel: string): void {
    const resolvers = this.waiting.get(channel);
    if (resolvers === undefined) return;
    this.waiting.delete(channel);
    for (const resolve of resolvers) resolve();
  }

  /**
   * Runs resubscribe(), never two at once: a request while one runs (a reconnect) makes it run
   * once more after. The health check asks again each second while anything failed, so retries
   * are bounded to one round a second.
   */
  private requestSync(): void {
    if (this.closed) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = true;
    void (async () => {
      try {
        do {
          this.syncAgain = false;
          await this.resubscribe();
        } while (this.syncAgain && !this.closed);
      } finally {
        this.syncing = false;
      }
    })();
  }

  /**
   * Before the subscriber is resubscribed on this connection: the probe channel and every wanted
   * channel not yet live. After: only the channels whose SUBSCRIBE failed. Stops at the first
   * failure; the health check asks again.
   */
  private async resubscribe(): Promise<void> {
    const epoch = this.subEpoch;
    const current = (): boolean => epoch === this.subEpoch && this.sub.redis.status === 'ready' && !this.closed;
    if (!current()) return;
    const full = !this.resubscribed;
    if (full) {
      const probe = await this.sub.redis.subscribe(this.options.prefix + this.probeChannel).then(
        () => true,
        (err: Error) => {
          this.log.warn({ err: err.message }, 'redis subscribe failed (probe channel); retried');
          return false;
        },
      );
      if (!probe || !current()) return;
    }
    const channels = full ? [...this.wanted.keys()] : [...this.retry];
    if (!full) this.retry.clear(); // a failure puts them back
    for (let i = 0; i < channels.length; i += RESUBSCRIBE_BATCH) {
      // Re-read the wanted set per batch: a channel dropped meanwhile must not be subscribed again.
      const batch = channels.slice(i, i + RESUBSCRIBE_BATCH).filter((c) => this.wanted.has(c) && !this.live.has(c));
      if (batch.length > 0 && !(await this.sendSubscribe(batch))) {
        if (!full) for (const c of channels.slice(i + RESUBSCRIBE_BATCH)) this.retry.add(c);
        return;
      }
      if (!current()) return;
    }
    if (!full || !current()) return;
    this.resubscribed = true;
    this.log.info({ channels: this.wanted.size, origin: originHex(this.origin) }, 'redis subscriber ready; channels subscribed');
    // Ready only once a probe has made the round trip on this subscription (the publisher's
    // recovery sends it if the publisher is down now).
    if (this.canPublish()) this.probe.sendNow();
    this.emitReadiness();
  }

  private checkHealth(): void {
    this.logGaps();
    // A SUBSCRIBE that failed while the connection stayed up (Redis stalled past the command
    // timeout between two PINGs): nothing else would retry it, and readiness or a client's ack
    // would wait forever.
    const { sub } = this;
    if (sub.up && sub.answering && !this.syncing && (!this.resubscribed || this.retry.size > 0)) this.requestSync();
    for (const conn of [this.pub, this.sub]) {
      if (!conn.up || conn.pinging) continue;
      conn.pinging = true;
      conn.redis.ping().then(
        () => {
          conn.pinging = false;
          if (conn.answering || !conn.up) return;
          conn.answering = true;
          this.log.info({ role: conn.role }, 'redis answering again');
          // Commands may have timed out while it stalled: send again any SUBSCRIBE that did.
          if (conn === this.sub) this.requestSync();
          this.emitReadiness();
        },
        (err: Error) => {
          conn.pinging = false;
          if (!conn.answering || !conn.up) return;
          conn.answering = false;
          this.log.warn({ role: conn.role, err: err.message }, 'redis not answering');
          this.emitReadiness();
        },
      );
    }
  }

  private connection(role: BusConnection, redis: Redis): Connection {
    const conn: Connection = { role, redis, up: false, answering: true, pinging: false };
    let everReady = false;
    redis.on('ready', () => {
      conn.up = true;
      conn.answering = true;
      this.stats.busConnected[role] = 1;
      everReady = true;
      if (role === 'subscriber') {
        this.requestSync();
      } else {
        this.log.info('redis publisher ready');
        if (!this.probe.isOk && this.sub.up && this.resubscribed) this.probe.sendNow();
        this.emitReadiness();
      }
    });
    redis.on('close', () => {
      conn.up = false;
      if (role === 'subscriber') {
        this.subEpoch++;
        this.resubscribed = false;
        this.live.clear();
        this.retry.clear(); // the next connection subscribes everything
        this.probe.reset();
      }
      this.stats.busConnected[role] = 0;
      if (everReady && !this.closed) this.log.warn({ role }, 'redis connection lost');
      this.emitReadiness();
    });
    redis.on('reconnecting', () => {
      this.stats.busReconnects[role]++;
    });
    // ioredis reports each failed attempt; the state changes above are what matter, so keep this quiet.
    redis.on('error', (err: Error) => {
      this.log.debug({ role, err: err.message }, 'redis connection error');
    });
    return conn;
  }

  /** Gaps are counted on the hot path and logged here, at most once a second. */
  private logGaps(): void {
    const { busGaps, busDuplicates } = this.stats;
    const seen = busGaps + busDuplicates;
    if (seen === this.gapsLogged) return;
    this.gapsLogged = seen;
    this.log.warn({ gaps: busGaps, duplicates: busDuplicates }, 'bus messages missing or repeated (totals)');
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

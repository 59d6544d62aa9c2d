// The Redis bus: one publisher and one subscriber connection (a subscribed connection can run
// no other command). Each hub channel C maps to the Redis channel REDIS_PREFIX + C. This file
// only wires pure cores to ioredis: subscriptions.ts decides what to SUBSCRIBE and when a channel
// is live, health.ts when to PING and what counts as ready, probe.ts whether messages flow,
// sequence.ts what is missing or repeated, outage.ts what an operator is told.
//
// Neither connection queues commands while Redis is down: a publish is rejected at once, and
// the subscriber resubscribes its whole channel set itself on every (re)connect, and sends again
// any SUBSCRIBE that failed, so readiness can mean "every channel is live again", not merely "the
// TCP connection is back".
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
import { Health, Readiness } from './health.js';
import { OutageLog, type OutageReport, redisAddress } from './outage.js';
import { Probe } from './probe.js';
import { SequenceStamper, SequenceTracker } from './sequence.js';
import { type Step, type SubscribeBatch, Subscriptions } from './subscriptions.js';

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

/** How long quit() may take before the connection is dropped. */
const QUIT_TIMEOUT_MS = 1000;

function retryDelay(attempt: number): number {
  // 50 ms, 100 ms, 200 ms ... capped at 2 s: quick after a blip, gentle during an outage.
  return Math.min(50 * 2 ** Math.min(attempt - 1, 6), 2000);
}

export class RedisBus implements Bus {
  readonly kind = 'redis';
  /** This process's origin id on the bus; a restarted gateway is a new origin. */
  readonly origin = randomOrigin(randomBytes(6));
  private readonly pub: Redis;
  private readonly sub: Redis;
  private listener: BusListener | null = null;
  private closed = false;
  private readonly prefixLength: number;
  private readonly address: string;
  private readonly stamper = new SequenceStamper(this.origin);
  private readonly tracker: SequenceTracker;
  private readonly subs: Subscriptions;
  private readonly health: Health<BusConnection>;
  private readonly readiness: Readiness;
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
    this.address = redisAddress(options.url);
    this.tracker = new SequenceTracker(stats);
    // Tracked from the SUBSCRIBE reply on: see SequenceTracker.hold.
    this.subs = new Subscriptions({ live: (channel) => this.tracker.watch(channel) });
    this.health = new Health<BusConnection>(['publisher', 'subscriber'], {
      tick: () => this.tick(),
      ping: (role) => this.redis(role).ping(),
      changed: (role, answering, err) => this.answeringChanged(role, answering, err),
    });
    this.probe = new Probe({ intervalMs: options.probeIntervalMs, timeoutMs: options.probeTimeoutMs }, {
      canSend: () => this.readiness.canProbe,
      send: (payload) => {
        this.pub.publish(this.options.prefix + this.probeChannel, payload).catch(() => undefined);
      },
      changed: (ok, why) => {
        if (ok) this.log.info('bus probe came back: messages flow');
        else if (why === 'timeout') this.log.warn({ timeoutMs: options.probeTimeoutMs }, 'bus probe did not come back: subscriber starved');
        this.emitReadiness();
      },
    }, stats);
    this.readiness = new Readiness(this.health.link('publisher'), this.health.link('subscriber'), this.subs, this.probe);
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
    this.pub = this.wire('publisher', new Redis(options.url, { ...common, connectionName: 'hubcast-pub' }));
    this.sub = this.wire('subscriber', new Redis(options.url, { ...common, connectionName: 'hubcast-sub' }));
    this.sub.on('messageBuffer', this.onMessage);
    this.health.start();
  }

  get ready(): boolean {
    return this.readiness.ready;
  }

  setListener(listener: BusListener): void {
    this.listener = listener;
  }

  async start(): Promise<void> {
    // A Redis that is down at start is not fatal: the gateway serves /healthz, answers 503 on
    // /readyz and keeps retrying, as it does for an outage later on.
    this.probe.start();
    for (const conn of [this.pub, this.sub]) conn.connect().catch(() => undefined);
  }

  publish(channel: string, payload: Buffer): Promise<void> {
    if (!this.readiness.canPublish) return Promise.reject(new BusUnavailableError(NOT_SENT));
    // One copy per publish (not per delivery): the envelope goes in front of the payload.
    const message = Buffer.allocUnsafe(ENVELOPE_BYTES + payload.length);
    this.stamper.stamp(channel, message);
    payload.copy(message, ENVELOPE_BYTES);
    // From here the sequence number is spent: if Redis took the message but the reply was lost,
    // subscribers get it; if not, they count it as a gap. Either way the client is told so.
    return this.pub.publish(this.options.prefix + channel, message).then(
      () => undefined,
      (err: Error) => Promise.reject(new BusUnavailableError(`${UNCONFIRMED} (${err.message})`, true)),
    );
  }

  subscribe(channel: string): void {
    this.tracker.hold(channel); // tracked from the SUBSCRIBE reply on
    this.send(this.subs.subscribe(channel));
  }

  unsubscribe(channel: string): void {
    this.tracker.forget(channel);
    if (!this.subs.unsubscribe(channel)) return;
    this.sub.unsubscribe(this.options.prefix + channel).catch((err: Error) => {
      this.log.warn({ err: err.message, channel }, 'redis unsubscribe failed; resynced on reconnect');
    });
  }

  whenLive(channel: string): Promise<void> {
    return this.subs.whenLive(channel);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.health.stop();
    this.probe.stop();
    this.subs.close();
    this.readiness.close();
    this.emitReadiness();
    await Promise.all([quit(this.pub), quit(this.sub)]);
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

  private redis(role: BusConnection): Redis {
    return role === 'publisher' ? this.pub : this.sub;
  }

  /** Sends a SUBSCRIBE the subscription core asked for and hands it the outcome. */
  private send(batch: SubscribeBatch | null): void {
    if (batch === null) return;
    const prefix = this.options.prefix;
    const names = batch.probe ? [prefix + this.probeChannel] : batch.channels.map((c) => prefix + c);
    this.sub
      .subscribe(...names)
      .then(
        () => this.step(this.subs.confirmed(batch)),
        (err: Error) => {
          if (batch.probe) this.log.warn({ err: err.message }, 'redis subscribe failed (probe channel); retried');
          else this.log.warn({ err: err.message, channels: batch.channels.length }, 'redis subscribe failed; retried');
          this.step(this.subs.failed(batch));
        },
      )
      .catch((err: unknown) => this.log.error({ err }, 'bus subscribe handling failed'));
  }

  private step(step: Step): void {
    if (step.resubscribed) {
      this.log.info({ channels: this.subs.size, origin: originHex(this.origin) }, 'redis subscriber ready; channels subscribed');
      // Ready only once a probe has made the round trip on this subscription (the publisher's
      // recovery sends it if the publisher is down now).
      if (this.readiness.canPublish) this.probe.sendNow();
      this.emitReadiness();
    }
    this.send(step.send);
  }

  /** Every health check, before its PINGs. */
  private tick(): void {
    this.logGaps();
    // A SUBSCRIBE that failed while the connection stayed up (Redis stalled past the command
    // timeout between two PINGs): nothing else would retry it, and readiness or a client's ack
    // would wait forever.
    if (this.health.link('subscriber').healthy && this.subs.needsSync) this.send(this.subs.requestSync());
  }

  private answeringChanged(role: BusConnection, answering: boolean, err: Error | undefined): void {
    if (answering) {
      this.log.info({ role }, 'redis answering again');
      // Commands may have timed out while it stalled: send again any SUBSCRIBE that did.
      if (role === 'subscriber') this.send(this.subs.requestSync());
    } else {
      this.log.warn({ role, address: this.address, err: err?.message }, 'redis not answering');
    }
    this.emitReadiness();
  }

  /** Follows one connection's events into health, subscriptions, probe, stats and the outage log. */
  private wire(role: BusConnection, redis: Redis): Redis {
    const link = this.health.link(role);
    const outage = new OutageLog();
    redis.on('ready', () => {
      link.connected();
      this.stats.busConnected[role] = 1;
      this.report(role, outage.up());
      if (role === 'subscriber') {
        this.send(this.subs.connectionUp());
      } else {
        this.log.info('redis publisher ready');
        if (!this.probe.isOk && this.readiness.canProbe) this.probe.sendNow();
        this.emitReadiness();
      }
    });
    redis.on('close', () => {
      link.disconnected();
      if (role === 'subscriber') {
        this.subs.connectionLost();
        this.probe.reset();
      }
      this.stats.busConnected[role] = 0;
      if (!this.closed) this.report(role, outage.failed());
      this.emitReadiness();
    });
    redis.on('reconnecting', () => {
      this.stats.busReconnects[role]++;
    });
    // ioredis reports each failed attempt; the close that follows is what gets logged (outage.ts).
    redis.on('error', (err: Error) => {
      outage.error(err.message);
      this.log.debug({ role, err: err.message }, 'redis connection error');
    });
    return redis;
  }

  private report(role: BusConnection, report: OutageReport | null): void {
    if (report === null) return;
    const { line, ...fields } = report;
    this.log[line.level]({ role, address: this.address, ...fields }, line.msg);
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
    const ready = this.readiness.settle();
    if (ready !== null) this.listener?.readiness(ready);
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

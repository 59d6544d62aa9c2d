// The Redis bus: one publisher and one subscriber connection (a subscribed connection can run
// no other command). Each hub channel C maps to the Redis channel REDIS_PREFIX + C, or with
// history on REDIS_PREFIX + '{' + C + '}' (the hash tag of C's history keys, so that on Redis
// Cluster the publish script's SPUBLISH stays in C's slot). This file
// only wires pure cores to ioredis: subscriptions.ts decides what to SUBSCRIBE and when a channel
// is live, health.ts when to PING and what counts as ready, probe.ts whether messages flow,
// sequence.ts what is missing or repeated, outage.ts what an operator is told.
//
// Neither connection queues commands while Redis is down: a publish is rejected at once, and
// the subscriber resubscribes its whole channel set itself on every (re)connect, and sends again
// any SUBSCRIBE that failed, so readiness can mean "every channel is live again", not merely "the
// TCP connection is back".
//
// History off: every message carries an envelope (envelope.ts): this process's origin id and a
// sequence per (origin, channel), so receivers count gaps and drop duplicates (sequence.ts).
// History on: every publish runs the history script (history-redis.ts), messages carry their
// offset and epoch (position.ts), and a gap is repaired from history (position-repair.ts).
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { BusConnection } from '../codes.js';
import type { Stats } from '../stats.js';
import { HistoryReadPurpose } from '../codes.js';
import { NOT_SENT, RedisBatchWriter, publishManyScript } from './batch-writer.js';
import { type Bus, type BusListener, BusUnavailableError, type PublishReceipt } from './bus.js';
import { envelopePayload, hasEnvelope, originHex, randomOrigin } from './envelope.js';
import { Health, Readiness } from './health.js';
import { type ObserveHistoryRead, HistoryReads } from './history-reads.js';
import { RedisHistory } from './history-redis.js';
import { GapRepair } from './position-repair.js';
import { type Position, type PositionedMessage, hasPosition, messageHead, readPositioned } from './position.js';
import { OutageLog, type OutageReport, redisAddress } from './outage.js';
import { Probe } from './probe.js';
import { type PublishBatch, PublishBatcher } from './publish-batch.js';
import { GapLog, readForRepair } from './repair-reads.js';
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
  /** HISTORY_SIZE and HISTORY_TTL_S; null: history off (plain PUBLISH with the envelope). */
  readonly history: { readonly size: number; readonly ttlS: number } | null;
  readonly observeHistoryRead?: ObserveHistoryRead;
}

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
  readonly history: HistoryReads | null;
  private readonly store: RedisHistory | null;
  /** With history on: offsets per channel, repairs from history, `lost` (replaces the tracker for positioned messages). */
  private readonly repair: GapRepair | null;
  /** The subscriber connection dropped since the last full resubscribe: each channel's top is checked after the next. */
  private checkTops = false;
  private listener: BusListener | null = null;
  private closed = false;
  /** Bytes before the hub channel name in a Redis channel name, and after it ('}' with history on). */
  private readonly prefixLength: number;
  private readonly suffixLength: number;
  private readonly address: string;
  private readonly stamper = new SequenceStamper(this.origin);
  private readonly tracker: SequenceTracker;
  private readonly subs: Subscriptions;
  private readonly health: Health<BusConnection>;
  private readonly readiness: Readiness;
  private readonly probe: Probe;
  /** The probe's channel, named outside the hub's channel alphabet so no client can collide with it. */
  private readonly probeChannel = `#probe.${originHex(this.origin)}`;
  private readonly gapLog = new GapLog();
  /** The turn's publishes, written as one script call (history-redis.ts, or PUBLISH_MANY_LUA with history off). */
  private readonly batcher: PublishBatcher;

  constructor(
    private readonly options: RedisBusOptions,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {
    const tagged = options.history !== null;
    this.prefixLength = Buffer.byteLength(options.prefix) + (tagged ? 1 : 0);
    this.suffixLength = tagged ? 1 : 0;
    this.address = redisAddress(options.url);
    this.tracker = new SequenceTracker(stats);
    this.repair = tagged ? new GapRepair(this.repairHost, stats) : null;
    // Tracked from the SUBSCRIBE reply on: see SequenceTracker.hold.
    this.subs = new Subscriptions({
      live: (channel) => {
        this.tracker.watch(channel);
        this.repair?.watch(channel);
      },
    });
    this.health = new Health<BusConnection>(['publisher', 'subscriber'], {
      tick: () => this.tick(),
      ping: (role) => this.redis(role).ping(),
      changed: (role, answering, err) => this.answeringChanged(role, answering, err),
    });
    this.probe = new Probe({ intervalMs: options.probeIntervalMs, timeoutMs: options.probeTimeoutMs }, {
      canSend: () => this.readiness.canProbe,
      send: (payload) => {
        this.pub.publish(this.redisName(this.probeChannel), payload).catch(() => undefined);
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
    if (options.history === null) {
      this.store = null;
      this.history = null;
    } else {
      const { size, ttlS } = options.history;
      this.store = new RedisHistory(this.pub, { prefix: options.prefix, size, ttlS, publishCommand: 'PUBLISH' });
      this.history = new HistoryReads(this.store, options.observeHistoryRead ?? (() => undefined));
    }
    const store = this.store;
    const send = store === null ? publishManyScript(this.pub, 'PUBLISH') : (batch: PublishBatch) => store.publishBatch(batch.channels, batch.messages);
    // Ready as the publish path needs it, and the socket up now: else the batch is certainly not sent.
    this.batcher = new PublishBatcher(new RedisBatchWriter(send, () => this.readiness.canPublish && this.pub.status === 'ready'));
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

  publish<T>(channel: string, payload: Buffer, receipt: PublishReceipt<T>, token: T): BusUnavailableError | null {
    if (!this.readiness.canPublish) return new BusUnavailableError(NOT_SENT);
    if (this.store !== null) {
      // The script appends the position to the head and publishes: no envelope, no copy here.
      this.batcher.add(channel, messageHead(payload), receipt, token);
      return null;
    }
    // The envelope in front of the payload (sequence.ts); however the batch ends, the client is told.
    this.batcher.add(this.options.prefix + channel, this.stamper.envelop(channel, payload), receipt, token);
    return null;
  }

  subscribe(channel: string): void {
    this.tracker.hold(channel); // tracked from the SUBSCRIBE reply on
    this.send(this.subs.subscribe(channel));
  }

  unsubscribe(channel: string): void {
    this.tracker.forget(channel);
    this.repair?.forget(channel);
    if (!this.subs.unsubscribe(channel)) return;
    this.sub.unsubscribe(this.redisName(channel)).catch((err: Error) => {
      this.log.warn({ err: err.message, channel }, 'redis unsubscribe failed; resynced on reconnect');
    });
  }

  whenLive(channel: string): Promise<void> {
    return this.subs.whenLive(channel);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // What this turn took goes out ahead of QUIT, so a graceful close keeps what it accepted.
    this.batcher.flush();
    this.health.stop();
    this.probe.stop();
    this.subs.close();
    this.readiness.close();
    this.emitReadiness();
    await Promise.all([quit(this.pub), quit(this.sub)]);
  }

  /** The Redis pub/sub channel of a hub channel (or of the probe). */
  private redisName(channel: string): string {
    return this.suffixLength === 0 ? this.options.prefix + channel : `${this.options.prefix}{${channel}}`;
  }

  private readonly onMessage = (redisChannel: Buffer, message: Buffer): void => {
    // Hub channel names are ASCII, so latin1 decoding is exact and cheaper than UTF-8.
    const channel = redisChannel.toString('latin1', this.prefixLength, redisChannel.length - this.suffixLength);
    if (hasPosition(message)) {
      const m = readPositioned(message);
      if (this.repair !== null) this.repair.accept(channel, m);
      // History off here but on where it was published (a configuration being rolled out): deliver, unchecked.
      else this.listener?.message(channel, m.bytes);
      return;
    }
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
    const names = batch.probe ? [this.redisName(this.probeChannel)] : batch.channels.map((c) => this.redisName(c));
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
      // The top reads go on the publisher connection: if it is not back yet, its 'ready' runs them.
      if (this.checkTops && this.readiness.canPublish) this.checkChannelTops();
    }
    this.send(step.send);
  }

  /** Gap repair's needs, met with history reads; replies always come in a later turn, as GapRepair requires. */
  private readonly repairHost = {
    deliver: (channel: string, m: PositionedMessage): void => this.listener?.message(channel, m.bytes, m),
    lost: (channel: string, position: Position): void => this.listener?.lost(channel, position),
    repair: (channel: string, id: number, epoch: string, after: number, to: number): void =>
      readForRepair(this.history!, this.repair!, this.log, channel, id, epoch, after, to),
  };

  /**
   * Resubscribed after the subscriber connection dropped: the last messages published before
   * the outage have no later message to reveal their loss, so each channel's top is read once.
   */
  private checkChannelTops(): void {
    this.checkTops = false;
    const history = this.history!;
    let failed = 0;
    for (const channel of this.subs.channels()) {
      history.top(channel, HistoryReadPurpose.Top).then(
        (position) => this.repair!.top(channel, position),
        (err: Error) => {
          // One line per check run, not per channel: a gateway may hold thousands.
          if (failed++ === 0) this.log.warn({ err: err.message, channel }, 'history top check after reconnect failed; the next message on such a channel reveals any gap');
        },
      );
    }
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
        // The subscriber resubscribed first: the top check it could not send waited for this.
        if (this.checkTops && this.readiness.canProbe) this.checkChannelTops();
        this.emitReadiness();
      }
    });
    redis.on('close', () => {
      link.disconnected();
      if (role === 'subscriber') {
        this.subs.connectionLost();
        this.probe.reset();
        if (this.repair !== null) {
          this.repair.connectionLost();
          this.checkTops = true;
        }
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
    this.gapLog.tick(this.stats, this.log);
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

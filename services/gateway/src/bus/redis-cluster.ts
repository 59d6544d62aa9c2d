// The Redis Cluster bus (REDIS_CLUSTER_NODES): one ioredis Cluster with sharded subscribers, so
// hub channel C is the shard channel REDIS_PREFIX + '{' + C + '}', in the slot of C's history
// keys. SSUBSCRIBE goes to the master serving that slot (ioredis keeps one subscriber connection
// per master), and the history publish script runs on that master and SPUBLISHes there; with
// HISTORY_SIZE=0 the envelope goes out with SPUBLISH. No classic PUBLISH: it is copied to every
// node and does not scale.
//
// This file wires pure cores to ioredis, as redis.ts does for one Redis: shards.ts says which
// master serves a channel, when a shard is ready and how to bound reconnects, slot-refresh.ts
// refreshes the slot map after a failover, probe.ts proves messages flow (one probe channel per
// master), position-repair.ts repairs gaps and fences offsets that went backwards, sequence.ts
// counts gaps when history is off. What ioredis does in each failure is measured in
// docs/redis-cluster-notes.md.
//
// Readiness is per shard: a lost shard (its subscriber connection ended, or its master pushed
// `sunsubscribe` in a failover) unconfirms its channels only. They are subscribed again with an
// SSUBSCRIBE of our own, one slot per command, on whichever master serves them now (ioredis
// resubscribes too, but nothing tells when that is done), and each is checked against its stream
// once confirmed (the top check): what the outage hid is repaired, or reported `lost`.
import { randomBytes } from 'node:crypto';
import { Cluster, type ClusterOptions } from 'ioredis';
import type { Logger } from 'pino';
import { HistoryReadPurpose } from '../codes.js';
import type { SeedNode } from '../config.js';
import type { Stats } from '../stats.js';
import { NOT_SENT, RedisBatchWriter, SlotRunsWriter, publishManyScript } from './batch-writer.js';
import { type Bus, type BusListener, BusUnavailableError, type PublishReceipt } from './bus.js';
import { envelopePayload, hasEnvelope, originHex, randomOrigin } from './envelope.js';
import { HistoryReads } from './history-reads.js';
import { RedisHistory } from './history-redis.js';
import { GapRepair, type RepairHost } from './position-repair.js';
import { type Position, hasPosition, messageHead, readPositioned } from './position.js';
import { Probe, type ProbeCounts } from './probe.js';
import { SequenceStamper, SequenceTracker } from './sequence.js';
import { ReconnectBound, ShardReadiness, UNKNOWN_SHARD, groupBySlot, isSubscriptionLost, keySlot, mastersOf, nameOnShard } from './shards.js';
import { type PublishBatch, PublishBatcher } from './publish-batch.js';
import type { RedisBusOptions } from './redis.js';
import { GapLog, readForRepair } from './repair-reads.js';
import { SlotRefresh } from './slot-refresh.js';

/** As for one Redis, with seed nodes instead of a URL; history off means SPUBLISH with the envelope. */
export interface ClusterBusOptions extends Omit<RedisBusOptions, 'url'> {
  /** REDIS_CLUSTER_NODES: where the slot map is first read. */
  readonly nodes: readonly SeedNode[];
}

/** The backstop slot-map refresh: a failover SlotRefresh missed is noticed within this long. */
export const SLOTS_REFRESH_INTERVAL_MS = 5000;
/** How often unconfirmed channels are subscribed again and gaps logged. */
const TICK_MS = 1000;
const QUIT_TIMEOUT_MS = 1000;

/** A Cluster that lost every node reconnects, never gives up (null would end it for good). */
function clusterRetry(times: number): number {
  return Math.min(100 * 2 ** Math.min(times - 1, 5), 2000);
}

/** One probe per master, on a channel whose slot that master serves. */
interface ShardProbe {
  readonly channel: string;
  readonly probe: Probe;
}

/** A probe's counters, folded into the gateway's: busProbeOk is 1 only while every master's probe is. */
class ShardProbeCounts implements ProbeCounts {
  private ok = 0;
  constructor(
    private readonly stats: Stats,
    private readonly allOk: () => boolean,
  ) {}

  get busProbeOk(): number {
    return this.ok;
  }

  set busProbeOk(value: number) {
    this.ok = value;
    this.stats.busProbeOk = this.allOk() ? 1 : 0;
  }

  get busProbeFailures(): number {
    return this.stats.busProbeFailures;
  }

  set busProbeFailures(value: number) {
    this.stats.busProbeFailures = value;
  }
}

export class ClusterBus implements Bus {
  readonly kind = 'redis_cluster';
  readonly origin = randomOrigin(randomBytes(6));
  readonly history: HistoryReads | null;
  private readonly cluster: Cluster;
  private readonly refresh: SlotRefresh;
  private readonly shards: ShardReadiness;
  private readonly store: RedisHistory | null;
  private readonly repair: GapRepair | null;
  private readonly stamper = new SequenceStamper(this.origin);
  private readonly tracker: SequenceTracker;
  /** Every channel wanted on the bus, the probes' included, with the number of the subscribe() that wanted it. */
  private readonly wanted = new Map<string, number>();
  private seq = 0;
  /** Channels with an SSUBSCRIBE outstanding, with the subscribe number it was sent for. */
  private readonly inFlight = new Map<string, number>();
  /** Times each shard was lost: a reply sent before the last loss confirms nothing. */
  private readonly losses = new Map<string, number>();
  /** When each shard not ready was lost (for the log line when it is back). */
  private readonly lostAt = new Map<string, number>();
  /** Channels to check against their stream once confirmed (their shard was lost or moved). */
  private readonly checkTops = new Set<string>();
  private readonly waiting = new Map<string, (() => void)[]>();
  private readonly probes = new Map<string, ShardProbe>();
  private readonly probeOf = new Map<string, Probe>();
  private readonly probeBase = `#probe.${originHex(this.origin)}`;
  private readonly prefixLength: number;
  private listener: BusListener | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private started = false;
  private lastReady = false;
  private readonly gapLog = new GapLog();
  /** The turn's publishes: one script call per run of one slot (its keys and shard channels must share one). */
  private readonly batcher: PublishBatcher;

  constructor(
    private readonly options: ClusterBusOptions,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {
    this.prefixLength = Buffer.byteLength(options.prefix) + 1;
    const clusterOptions: ClusterOptions = {
      lazyConnect: true,
      // Measured: without it ssubscribe never delivers (docs/redis-cluster-notes.md).
      shardedSubscribers: true,
      // A publish while the cluster is not ready is refused at once, as on one Redis.
      enableOfflineQueue: false,
      slotsRefreshInterval: SLOTS_REFRESH_INTERVAL_MS,
      slotsRefreshTimeout: options.timeoutMs,
      clusterRetryStrategy: clusterRetry,
      redisOptions: {
        connectTimeout: 5000,
        commandTimeout: options.timeoutMs,
        keepAlive: 5000,
        connectionName: 'hubcast',
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: 0,
      },
    };
    this.cluster = new Cluster(options.nodes.map((n) => ({ host: n.host, port: n.port })), clusterOptions);
    this.refresh = new SlotRefresh(this.cluster, new ReconnectBound());
    this.shards = new ShardReadiness(this.owner, (channel) => keySlot(this.redisName(channel)));
    this.tracker = new SequenceTracker(stats);
    if (options.history === null) {
      this.store = null;
      this.history = null;
      this.repair = null;
    } else {
      const { size, ttlS } = options.history;
      this.store = new RedisHistory(this.cluster, { prefix: options.prefix, size, ttlS, publishCommand: 'SPUBLISH' });
      this.history = new HistoryReads(this.store, options.observeHistoryRead ?? (() => undefined));
      this.repair = new GapRepair(this.repairHost, stats);
    }
    const store = this.store;
    // History on, a batch holds hub channels (the script names their keys); off, shard channel names.
    const send = store === null ? publishManyScript(this.cluster, 'SPUBLISH') : (batch: PublishBatch) => store.publishBatch(batch.channels, batch.messages);
    const slotOf = store === null ? keySlot : (channel: string) => keySlot(this.redisName(channel));
    this.batcher = new PublishBatcher(new SlotRunsWriter(slotOf, new RedisBatchWriter(send, () => !this.closed && this.cluster.status === 'ready')));
    this.wire();
  }

  get ready(): boolean {
    return (
      !this.closed &&
      this.cluster.status === 'ready' &&
      this.probes.size > 0 &&
      this.shards.ready &&
      [...this.probes.values()].every((p) => p.probe.isOk)
    );
  }

  setListener(listener: BusListener): void {
    this.listener = listener;
  }

  async start(): Promise<void> {
    // A cluster that is down at start is not fatal, as for one Redis: 503 on /readyz, retried.
    this.started = true;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.cluster.connect().catch((err: Error) => this.log.warn({ err: err.message }, 'redis cluster not reachable yet; retrying'));
  }

  publish<T>(channel: string, payload: Buffer, receipt: PublishReceipt<T>, token: T): BusUnavailableError | null {
    if (this.closed || this.cluster.status !== 'ready') return new BusUnavailableError(NOT_SENT);
    if (this.store !== null) {
      this.batcher.add(channel, messageHead(payload), receipt, token);
      return null;
    }
    this.batcher.add(this.redisName(channel), this.stamper.envelop(channel, payload), receipt, token);
    return null;
  }

  subscribe(channel: string): void {
    this.tracker.hold(channel);
    this.want(channel);
    // Its own SSUBSCRIBE now (a full sync per subscribe would cost O(channels) each); without a
    // master known or a connection, the next sync sends it.
    if (!this.closed && this.cluster.status === 'ready' && this.shards.shardOf(channel) !== UNKNOWN_SHARD) this.send([channel]);
  }

  unsubscribe(channel: string): void {
    this.tracker.forget(channel);
    this.repair?.forget(channel);
    this.unwant(channel);
    this.release(channel);
  }

  whenLive(channel: string): Promise<void> {
    if (this.closed || !this.wanted.has(channel) || this.shards.isConfirmed(channel)) return Promise.resolve();
    let list = this.waiting.get(channel);
    if (list === undefined) this.waiting.set(channel, (list = []));
    const resolvers = list;
    return new Promise((resolve) => resolvers.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // What this turn took goes out ahead of QUIT, so a graceful close keeps what it accepted.
    this.batcher.flush();
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const { probe } of this.probes.values()) probe.stop();
    for (const channel of [...this.waiting.keys()]) this.release(channel);
    this.refresh.uninstall();
    this.emitReadiness();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
    });
    if (this.cluster.status === 'ready') await Promise.race([this.cluster.quit().then(() => undefined, () => undefined), timeout]);
    clearTimeout(timer);
    this.cluster.disconnect();
  }

  /** The shard channel of a hub channel (or of a probe): tagged, so it sits in the slot of the channel's history keys. */
  private redisName(channel: string): string {
    return `${this.options.prefix}{${channel}}`;
  }

  /** The master serving a slot now ("host:port", as ioredis names nodes). */
  private readonly owner = (slot: number): string | undefined => this.cluster.slots[slot]?.[0];

  private want(channel: string): void {
    this.wanted.set(channel, ++this.seq);
    this.shards.want(channel);
  }

  private unwant(channel: string): void {
    if (!this.wanted.delete(channel)) return;
    this.shards.drop(channel);
    this.inFlight.delete(channel);
    this.checkTops.delete(channel);
    if (this.cluster.status !== 'ready') return; // ioredis forgets it with the rest on reconnect
    this.cluster.sunsubscribe(this.redisName(channel)).catch((err: Error) => {
      this.log.warn({ err: err.message, channel }, 'redis cluster sunsubscribe failed');
    });
  }

  /** Sends an SSUBSCRIBE, one slot per command, for every wanted channel not confirmed nor in flight. */
  private sync(): void {
    if (this.closed || this.cluster.status !== 'ready') return;
    const due: string[] = [];
    for (const [channel, seq] of this.wanted) {
      if (this.shards.isConfirmed(channel) || this.inFlight.get(channel) === seq) continue;
      if (this.shards.shardOf(channel) === UNKNOWN_SHARD) continue; // no master known yet: after the next refresh
      due.push(channel);
    }
    if (due.length === 0) return;
    for (const group of groupBySlot(due, (c) => keySlot(this.redisName(c)))) this.send(group);
  }

  private send(channels: string[]): void {
    const shard = this.shards.shardOf(channels[0]!)!;
    const losses = this.losses.get(shard) ?? 0;
    const seqs = channels.map((c) => this.wanted.get(c)!);
    channels.forEach((c, i) => this.inFlight.set(c, seqs[i]!));
    this.cluster.ssubscribe(...channels.map((c) => this.redisName(c))).then(
      () => {
        // A reply from before the shard was lost (or the slot moved) proves nothing about now.
        const current = (this.losses.get(shard) ?? 0) === losses;
        channels.forEach((c, i) => {
          if (this.inFlight.get(c) === seqs[i]) this.inFlight.delete(c);
          if (current && this.wanted.get(c) === seqs[i]) this.confirmed(c, shard);
        });
        this.emitReadiness();
      },
      (err: Error) => {
        channels.forEach((c, i) => {
          if (this.inFlight.get(c) === seqs[i]) this.inFlight.delete(c);
        });
        this.log.warn({ err: err.message, shard, channels: channels.length }, 'redis cluster ssubscribe failed; retried');
      },
    );
  }

  private confirmed(channel: string, shard: string): void {
    if (!this.shards.confirm(channel, shard)) return;
    const probe = this.probeOf.get(channel);
    if (probe !== undefined) {
      probe.sendNow(); // the shard proves itself with a fresh probe
    } else {
      this.tracker.watch(channel);
      this.repair?.watch(channel);
      this.release(channel);
      if (this.checkTops.delete(channel)) this.checkTop(channel);
    }
    if (this.shards.isShardReady(shard)) {
      const since = this.lostAt.get(shard);
      if (since !== undefined) {
        this.lostAt.delete(shard);
        this.log.info({ shard, downMs: Date.now() - since }, 'redis cluster shard subscribed again');
      }
    }
    if (this.shards.ready) this.refresh.settle();
  }

  /** The shard's subscription is gone (its subscriber ended, or its master pushed sunsubscribe). */
  private lose(shard: string, why: string): void {
    const channels = this.shards.lose(shard);
    this.losses.set(shard, (this.losses.get(shard) ?? 0) + 1);
    this.probes.get(shard)?.probe.reset();
    if (channels.length === 0) return;
    if (!this.lostAt.has(shard)) {
      this.lostAt.set(shard, Date.now());
      this.log.warn({ shard, channels: channels.length, why }, 'redis cluster shard lost; its channels are subscribed again');
    }
    this.interrupted(channels);
    this.emitReadiness();
  }

  /** Channels that may have missed messages: checked against their stream once confirmed again. */
  private interrupted(channels: readonly string[]): void {
    if (this.repair === null) return;
    let any = false;
    for (const channel of channels) {
      if (this.probeOf.has(channel)) continue;
      this.checkTops.add(channel);
      any = true;
    }
    if (any) this.repair.connectionLost();
  }

  /** The slot map changed: channels follow their slots, the probes their masters. */
  private remap(): void {
    if (this.cluster.slots.length === 0) return;
    const moved = this.shards.remap(this.owner);
    this.interrupted(moved);
    const masters = mastersOf(this.owner);
    for (const [shard, { channel, probe }] of this.probes) {
      if (masters.includes(shard) && this.owner(keySlot(this.redisName(channel))) === shard) continue;
      probe.stop();
      this.probes.delete(shard);
      this.probeOf.delete(channel);
      this.unwant(channel);
    }
    for (const shard of masters) if (!this.probes.has(shard)) this.addProbe(shard);
    this.sync();
    this.emitReadiness();
  }

  private addProbe(shard: string): void {
    const channel = nameOnShard(this.probeBase, shard, this.owner, (name) => keySlot(this.redisName(name)));
    if (channel === undefined) return;
    const redisName = this.redisName(channel);
    const probe = new Probe(
      { intervalMs: this.options.probeIntervalMs, timeoutMs: this.options.probeTimeoutMs },
      {
        canSend: () => !this.closed && this.cluster.status === 'ready' && this.shards.isConfirmed(channel),
        send: (payload) => {
          this.cluster.spublish(redisName, payload).catch(() => undefined);
        },
        changed: (ok, why) => {
          if (ok) this.log.info({ shard }, 'bus probe came back on this shard: messages flow');
          else if (why === 'timeout') this.log.warn({ shard, timeoutMs: this.options.probeTimeoutMs }, 'bus probe did not come back on this shard');
          // Confirmed but silent (a reply that reached a master the slot map had already left):
          // subscribe the shard's channels again and check them against their streams.
          if (why === 'timeout') this.lose(shard, 'probe did not come back');
          this.emitReadiness();
        },
      },
      new ShardProbeCounts(this.stats, () => [...this.probes.values()].every((p) => p.probe.isOk)),
    );
    this.probes.set(shard, { channel, probe });
    this.probeOf.set(channel, probe);
    this.want(channel);
    if (this.started) probe.start();
  }

  private readonly onMessage = (redisChannel: Buffer, message: Buffer): void => {
    const channel = redisChannel.toString('latin1', this.prefixLength, redisChannel.length - 1);
    if (hasPosition(message)) {
      const m = readPositioned(message);
      if (this.repair !== null) this.repair.accept(channel, m);
      else this.listener?.message(channel, m.bytes);
      return;
    }
    if (!hasEnvelope(message)) {
      const probe = this.probeOf.get(channel);
      if (probe !== undefined) probe.received(message);
      else this.stats.busInvalid++;
      return;
    }
    if (!this.tracker.accept(channel, message)) return;
    this.listener?.message(channel, envelopePayload(message));
  };

  /** Gap repair's needs, met with history reads on the channel's master; replies come in a later turn. */
  private readonly repairHost: RepairHost = {
    deliver: (channel, m) => this.listener?.message(channel, m.bytes, m),
    lost: (channel, position) => this.listener?.lost(channel, position),
    repair: (channel, id, epoch, after, to) => readForRepair(this.history!, this.repair!, this.log, channel, id, epoch, after, to),
    fence: (channel, id, observed) => {
      this.store!.fence(channel, observed).then(
        (now) => {
          if (now.epoch !== observed.epoch) {
            this.log.warn({ channel, observed: observed.offset, found: now.found, epoch: now.epoch }, 'channel history went backwards in a failover; moved to a new epoch');
          }
          this.repair!.fenced(channel, id, now, now.found);
        },
        (err: Error) => {
          this.log.warn({ err: err.message, channel }, 'history fence failed; what was held is reported lost');
          this.repair!.repairFailed(channel, id);
        },
      );
    },
  };

  /** The top check of a channel whose shard came back: the last messages before the outage have no later one to reveal their loss. */
  private checkTop(channel: string): void {
    this.history!.top(channel, HistoryReadPurpose.Top).then(
      (position: Position) => this.repair!.top(channel, position),
      (err: Error) => {
        this.log.warn({ err: err.message, channel }, 'history top check after a shard came back failed; the next message reveals any gap');
      },
    );
  }

  private tick(): void {
    this.gapLog.tick(this.stats, this.log);
    this.sync();
  }

  private wire(): void {
    const c = this.cluster;
    c.on('ready', () => {
      this.stats.busConnected.publisher = 1;
      this.log.info({ masters: mastersOf(this.owner).length }, 'redis cluster ready');
      this.remap();
    });
    c.on('refresh', () => this.remap());
    c.on('close', () => {
      this.stats.busConnected.publisher = 0;
      // Every subscriber goes with the cluster connection; each shard is subscribed again after.
      for (const shard of this.shards.shardStates().keys()) this.lose(shard, 'cluster connection closed');
      if (!this.closed) this.log.warn('redis cluster connection closed; reconnecting');
      this.emitReadiness();
    });
    c.on('reconnecting', () => {
      this.stats.busReconnects.publisher++;
    });
    c.on('+subscriber', () => {
      this.stats.busReconnects.subscriber++;
    });
    // The sharded subscriber of a master ended (ioredis names it); a pool node leaving has no name.
    c.on('-node', (_redis: unknown, shard?: string) => {
      if (shard !== undefined) this.lose(shard, 'subscriber connection ended');
    });
    c.on('nodeError', (err: Error, shard?: string) => {
      if (shard !== undefined && isSubscriptionLost(err)) this.lose(shard, 'the master pushed sunsubscribe (failover or slot migration)');
      else this.log.debug({ err: err.message, shard }, 'redis cluster node error');
    });
    c.on('subscribersReady', () => this.sync());
    // Mandatory: the Cluster emits `error` on every reconnect cycle, and dies without a listener.
    c.on('error', (err: Error) => this.log.debug({ err: err.message }, 'redis cluster error'));
    c.on('smessageBuffer', this.onMessage);
  }

  private release(channel: string): void {
    const resolvers = this.waiting.get(channel);
    if (resolvers === undefined) return;
    this.waiting.delete(channel);
    for (const resolve of resolvers) resolve();
  }

  private emitReadiness(): void {
    this.stats.busConnected.subscriber = this.shards.ready ? 1 : 0;
    const ready = this.ready;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    this.listener?.readiness(ready);
  }
}

// The I/O shell around an ioredis Cluster's slot-map refreshes: the policies in shards.ts applied.
//
// - Bound: every refresh ioredis asks for (a sharded subscriber ended, a MOVED, a failed connect)
//   goes through ReconnectBound. Against a SIGKILLed master, ioredis otherwise loops: subscriber
//   ends, refresh, same map, new subscriber to the dead address, refused, ends, refresh…
// - Recovery: a subscription lost to a pushed `sunsubscribe` (a graceful failover) starts the
//   FAILOVER_REFRESH schedule, since ioredis does not resubscribe by itself; settle() stops it once
//   the owner sees every shard ready again.
// refreshSlotsCache is public in ioredis's typings (marked @ignore in its docs), and ioredis calls it
// through the instance, so replacing it on the instance reaches every internal caller.
import type { Cluster } from 'ioredis';
import { ReconnectBound, RefreshSchedule, isSubscriptionLost } from './shards.js';

type Callback = (err?: Error | null) => void;

export interface SlotRefreshCounts {
  /** Refreshes ioredis (or the schedule) asked for. */
  asked: number;
  /** Refreshes actually run on the cluster after the bound merged the rest. */
  run: number;
  /** Subscriptions lost to a pushed sunsubscribe. */
  subscriptionsLost: number;
}

export class SlotRefresh {
  readonly counts: SlotRefreshCounts = { asked: 0, run: 0, subscriptionsLost: 0 };
  /** The cluster's own refreshSlotsCache (its prototype's, unless the instance had its own). */
  private readonly original: (callback?: Callback) => void;
  private readonly hadOwn: boolean;
  private readonly schedule: RefreshSchedule;
  private readonly bound: ReconnectBound;
  private timer: NodeJS.Timeout | null = null;
  private waiting: Callback[] = [];
  /** A connection error since the last refresh ran: that refresh did not reach a healthy map. */
  private failedSince = false;
  private installed = true;

  constructor(
    private readonly cluster: Cluster,
    bound = new ReconnectBound(),
  ) {
    this.bound = bound;
    this.hadOwn = Object.prototype.hasOwnProperty.call(cluster, 'refreshSlotsCache');
    this.original = cluster.refreshSlotsCache;
    this.schedule = new RefreshSchedule(() => this.refresh());
    cluster.refreshSlotsCache = (callback?: Callback) => this.refresh(callback);
    cluster.on('nodeError', this.onNodeError);
    cluster.on('error', this.onError);
    cluster.on('subscribersReady', this.onSubscribersReady);
  }

  /** Every shard is ready again: the rest of the failover schedule is not needed. */
  settle(): void {
    this.schedule.settle();
  }

  /** Restores the cluster's own refreshSlotsCache and drops the timers (before cluster.quit()). */
  uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    this.schedule.settle();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.hadOwn) this.cluster.refreshSlotsCache = this.original;
    else delete (this.cluster as { refreshSlotsCache?: unknown }).refreshSlotsCache;
    this.cluster.off('nodeError', this.onNodeError);
    this.cluster.off('error', this.onError);
    this.cluster.off('subscribersReady', this.onSubscribersReady);
    const waiting = this.waiting;
    this.waiting = [];
    for (const cb of waiting) cb(null);
  }

  private refresh(callback?: Callback): void {
    this.counts.asked++;
    if (callback !== undefined) this.waiting.push(callback);
    if (this.timer !== null) return; // merged into the one already waiting
    const wait = this.bound.delay(Date.now());
    if (wait === 0) {
      this.run();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.run();
    }, wait);
    this.timer.unref();
  }

  private run(): void {
    if (!this.installed) return;
    this.counts.run++;
    this.failedSince = false;
    const waiting = this.waiting;
    this.waiting = [];
    this.original.call(this.cluster, (err) => {
      for (const cb of waiting) cb(err);
    });
  }

  private readonly onNodeError = (err: Error): void => {
    if (isSubscriptionLost(err)) {
      this.counts.subscriptionsLost++;
      this.schedule.trigger();
      return;
    }
    this.failed();
  };

  /** ioredis emits `error` for a sharded subscriber that failed to connect. */
  private readonly onError = (): void => {
    this.failed();
  };

  private readonly onSubscribersReady = (): void => {
    // Every subscriber of the new map started without a connection error: the loop is over.
    if (!this.failedSince) this.bound.succeeded();
  };

  private failed(): void {
    this.failedSince = true;
    this.bound.failed(Date.now());
  }
}

// The subscriber connection's subscription state as a pure state machine: which channels the hub
// wants, which ones Redis confirmed on the current connection, which SUBSCRIBEs must be sent
// again, and who waits for a channel to go live. It decides what to send; redis.ts sends it and
// hands each reply back. No I/O and no timers, so every transition has a unit test.
//
// Connection epochs: each subscriber connection is a new epoch and every batch carries the one it
// was sent on, so a reply or failure from an earlier connection changes nothing. (Redis Cluster:
// one instance per shard connection, each with its own epochs and its own resubscribe.)

/** One SUBSCRIBE to send. The shell maps channels to Redis names and reports the outcome. */
export interface SubscribeBatch {
  readonly epoch: number;
  /** Hub channel names; empty for the probe channel's SUBSCRIBE. */
  readonly channels: readonly string[];
  /** Each channel's subscribe number when sent: a reply marks it live only if no unsubscribe/subscribe came since. */
  readonly seqs: readonly number[];
  /** The probe channel's SUBSCRIBE, the first step of a full resubscribe. */
  readonly probe: boolean;
  /** Sent by the resubscribe run (not by a single subscribe()). */
  readonly sync: boolean;
}

/** What the shell does after a reply. */
export interface Step {
  /** The next SUBSCRIBE of the resubscribe run, if any. */
  readonly send: SubscribeBatch | null;
  /** The whole wanted set has just been subscribed on this connection. */
  readonly resubscribed: boolean;
}

export interface SubscriptionHooks {
  /** Redis confirmed the channel on the current connection (SequenceTracker.watch: its baseline starts now). */
  live(channel: string): void;
}

/** Channels per SUBSCRIBE command when resubscribing a large set. */
export const RESUBSCRIBE_BATCH = 1000;

const IDLE: Step = { send: null, resubscribed: false };

interface Run {
  readonly epoch: number;
  /** A full resubscribe (new connection) rather than a retry of failed SUBSCRIBEs. */
  readonly full: boolean;
  /** What this run subscribes, batch by batch; null until the probe channel is confirmed. */
  channels: string[] | null;
  /** Start of the next batch in channels. */
  next: number;
}

export class Subscriptions {
  /** Every channel the hub wants, with the number of the subscribe() call that wanted it. */
  private readonly wanted = new Map<string, number>();
  private seq = 0;
  /** Channels confirmed by Redis on the current connection. */
  private readonly live = new Set<string>();
  /** Channels whose SUBSCRIBE failed on the current connection, still up: retried by the next run. */
  private readonly retry = new Set<string>();
  private readonly waiting = new Map<string, (() => void)[]>();
  private epoch = 0;
  private connected = false;
  private closed = false;
  /** The whole wanted set (and the probe channel) is subscribed on the current connection. */
  private subscribedAll = false;
  /** The resubscribe run in progress; there is never more than one. */
  private run: Run | null = null;
  /** Another run was asked for while one was in progress (a reconnect meanwhile): run once more. */
  private again = false;

  constructor(
    private readonly hooks: SubscriptionHooks,
    private readonly batchSize = RESUBSCRIBE_BATCH,
  ) {}

  get resubscribed(): boolean {
    return this.subscribedAll;
  }

  get size(): number {
    return this.wanted.size;
  }

  /** A run is due: nothing is running, and the connection is not fully subscribed or a SUBSCRIBE failed. */
  get needsSync(): boolean {
    return this.connected && !this.closed && this.run === null && (!this.subscribedAll || this.retry.size > 0);
  }

  isLive(channel: string): boolean {
    return this.live.has(channel);
  }

  /** Every channel the hub wants (a live view). */
  channels(): IterableIterator<string> {
    return this.wanted.keys();
  }

  isWanted(channel: string): boolean {
    return this.wanted.has(channel);
  }

  /** The subscriber connection is ready: start the full resubscribe. */
  connectionUp(): SubscribeBatch | null {
    this.connected = true;
    return this.requestSync();
  }

  /** The subscriber connection is gone: its successor subscribes everything again. */
  connectionLost(): void {
    this.connected = false;
    this.epoch++;
    this.subscribedAll = false;
    this.live.clear();
    this.retry.clear();
  }

  /** The hub wants the channel: returns its SUBSCRIBE when the connection is up. */
  subscribe(channel: string): SubscribeBatch | null {
    const seq = ++this.seq;
    this.wanted.set(channel, seq);
    if (!this.connected || this.closed) return null;
    return { epoch: this.epoch, channels: [channel], seqs: [seq], probe: false, sync: false };
  }

  /** The hub gave the channel up: true when an UNSUBSCRIBE should be sent now. */
  unsubscribe(channel: string): boolean {
    this.wanted.delete(channel);
    this.live.delete(channel);
    this.retry.delete(channel);
    this.release(channel);
    return this.connected && !this.closed;
  }

  /** Resolves once the channel is live on the current connection, or at once if not wanted. */
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

  /**
   * Starts a resubscribe run unless one is in progress (then it runs once more after). A full run
   * (the connection is not yet resubscribed) subscribes the probe channel, then every wanted channel
   * not yet live; otherwise only the channels whose SUBSCRIBE failed. A run stops at its first
   * failure; the health check asks again, so retries come at most once per check.
   */
  requestSync(): SubscribeBatch | null {
    if (this.closed) return null;
    if (this.run !== null) {
      this.again = true;
      return null;
    }
    return this.startRun();
  }

  /** Redis confirmed the batch. */
  confirmed(batch: SubscribeBatch): Step {
    if (batch.epoch === this.epoch) {
      batch.channels.forEach((channel, i) => {
        if (this.wanted.get(channel) !== batch.seqs[i]) return; // unsubscribed (and maybe re-wanted) since
        this.live.add(channel);
        this.retry.delete(channel);
        this.hooks.live(channel);
        this.release(channel);
      });
    }
    if (!batch.sync) return IDLE;
    const run = this.run;
    if (run === null || !this.current(run)) return this.endRun();
    if (batch.probe) run.channels = [...this.wanted.keys()];
    return this.advance(run);
  }

  /**
   * The batch failed: timed out (Redis stalled) or dropped with the connection. On a connection
   * still up nothing else would send it again (ioredis discards a late reply), so its channels wait
   * for the next run; a lost connection is resubscribed in full anyway.
   */
  failed(batch: SubscribeBatch): Step {
    const current = batch.epoch === this.epoch && this.connected;
    if (current) {
      batch.channels.forEach((channel, i) => {
        if (this.wanted.get(channel) === batch.seqs[i] && !this.live.has(channel)) this.retry.add(channel);
      });
    }
    if (!batch.sync) return IDLE;
    const run = this.run;
    if (current && run !== null && !run.full && run.channels !== null) {
      for (const channel of run.channels.slice(run.next)) if (this.wanted.has(channel)) this.retry.add(channel);
    }
    return this.endRun();
  }

  /** The bus is closing: every waiter is released, nothing more is sent. */
  close(): void {
    this.closed = true;
    for (const channel of [...this.waiting.keys()]) this.release(channel);
  }

  private current(run: Run): boolean {
    return run.epoch === this.epoch && this.connected && !this.closed;
  }

  private startRun(): SubscribeBatch | null {
    this.again = false;
    if (!this.connected) return null;
    const full = !this.subscribedAll;
    const run: Run = { epoch: this.epoch, full, channels: full ? null : [...this.retry], next: 0 };
    this.run = run;
    if (full) return { epoch: run.epoch, channels: [], seqs: [], probe: true, sync: true };
    this.retry.clear(); // a failure puts them back
    return this.advance(run).send;
  }

  /** The run's next batch, or its end. */
  private advance(run: Run): Step {
    const channels = run.channels!;
    while (run.next < channels.length) {
      // Re-read the wanted set per batch: a channel dropped meanwhile must not be subscribed again.
      const batch = channels.slice(run.next, run.next + this.batchSize).filter((c) => this.wanted.has(c) && !this.live.has(c));
      run.next += this.batchSize;
      if (batch.length > 0) {
        return { send: { epoch: run.epoch, channels: batch, seqs: batch.map((c) => this.wanted.get(c)!), probe: false, sync: true }, resubscribed: false };
      }
    }
    if (!run.full) return this.endRun();
    this.subscribedAll = true;
    const next = this.endRun();
    return { send: next.send, resubscribed: true };
  }

  private endRun(): Step {
    this.run = null;
    if (!this.again || this.closed) {
      this.again = false;
      return IDLE;
    }
    return { send: this.startRun(), resubscribed: false };
  }

  private release(channel: string): void {
    const resolvers = this.waiting.get(channel);
    if (resolvers === undefined) return;
    this.waiting.delete(channel);
    for (const resolve of resolvers) resolve();
  }
}

// Connection health and what counts as ready. A Redis that keeps its sockets open but stops
// answering looks connected to ioredis forever, so each connection is PINGed every interval; while
// its last PING failed it counts as down. Up, answering and the PING in flight live here; the
// shell (redis.ts) sends the PINGs and reports the connection's events.

/** How often each connection is PINGed. */
export const HEALTH_INTERVAL_MS = 1000;

/** One connection: TCP up and past ioredis's ready check, and answering its health PINGs. */
export class LinkHealth {
  /** TCP up and past ioredis's ready check. */
  up = false;
  /** The last health PING was answered in time. */
  answering = true;
  /** One PING at a time: a slow answer must not pile up PINGs. */
  private pinging = false;

  get healthy(): boolean {
    return this.up && this.answering;
  }

  /** ioredis's ready: a fresh connection answers until a PING says otherwise. */
  connected(): void {
    this.up = true;
    this.answering = true;
  }

  disconnected(): void {
    this.up = false;
  }

  /** True when a PING should go out now (up, none in flight); it is then in flight. */
  beginPing(): boolean {
    if (!this.up || this.pinging) return false;
    this.pinging = true;
    return true;
  }

  /** The PING was answered: true when this connection was not answering and now is. */
  answered(): boolean {
    this.pinging = false;
    if (this.answering || !this.up) return false;
    this.answering = true;
    return true;
  }

  /** The PING failed or timed out: true when this connection was answering and now is not. */
  failed(): boolean {
    this.pinging = false;
    if (!this.answering || !this.up) return false;
    this.answering = false;
    return true;
  }
}

export interface HealthHost<K extends string> {
  /** Runs first at every check (retries, periodic logs). */
  tick(): void;
  /** Sends a PING on the connection; it rejects when unanswered within the command timeout. */
  ping(link: K): Promise<unknown>;
  /** The connection started (true) or stopped (false, with the PING's error) answering. */
  changed(link: K, answering: boolean, err?: Error): void;
}

/** The health check: every interval, one PING per connection that is up and has none in flight. */
export class Health<K extends string> {
  private readonly links = new Map<K, LinkHealth>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    keys: readonly K[],
    private readonly host: HealthHost<K>,
    private readonly intervalMs = HEALTH_INTERVAL_MS,
  ) {
    for (const key of keys) this.links.set(key, new LinkHealth());
  }

  link(key: K): LinkHealth {
    return this.links.get(key)!;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  check(): void {
    this.host.tick();
    for (const [key, link] of this.links) {
      if (!link.beginPing()) continue;
      this.host.ping(key).then(
        () => {
          if (link.answered()) this.host.changed(key, true);
        },
        (err: Error) => {
          if (link.failed()) this.host.changed(key, false, err);
        },
      );
    }
  }
}

/** The whole wanted set is subscribed on the current subscriber connection (subscriptions.ts). */
export interface SubscribedState {
  readonly resubscribed: boolean;
}

/** A probe published after that subscription came back (probe.ts). */
export interface ProbeState {
  readonly isOk: boolean;
}

/**
 * What counts as ready, and its edges. Ready: both connections up and answering, every wanted
 * channel subscribed on the current subscriber connection, and a probe back through it.
 */
export class Readiness {
  private closed = false;
  private last = false;

  constructor(
    private readonly publisher: LinkHealth,
    private readonly subscriber: LinkHealth,
    private readonly subscriptions: SubscribedState,
    private readonly probe: ProbeState,
  ) {}

  /** A publish can be handed to Redis now. */
  get canPublish(): boolean {
    return this.publisher.healthy && !this.closed;
  }

  /** A probe can be published and can come back on the current subscription. */
  get canProbe(): boolean {
    return this.canPublish && this.subscriber.up && this.subscriptions.resubscribed;
  }

  get ready(): boolean {
    return this.canPublish && this.subscriber.healthy && this.subscriptions.resubscribed && this.probe.isOk;
  }

  close(): void {
    this.closed = true;
  }

  /** The new readiness when it changed since the last call, else null. */
  settle(): boolean | null {
    const ready = this.ready;
    if (ready === this.last) return null;
    this.last = ready;
    return ready;
  }
}

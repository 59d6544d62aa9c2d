// One upgrade between its checks and its 101 (or refusal): it holds a slot of the in-flight count
// (MAX_CONNECTIONS counts upgrades in progress) and its own deadline (HANDSHAKE_TIMEOUT_MS, against
// slowloris past the headers), and gives both back exactly once, whichever way it ends.
import type { Socket } from 'node:net';

/** Upgrades in progress on one gateway, and the ones waiting for their ?channels to go live. */
export class PendingUpgrades {
  private count = 0;
  private readonly waiting = new Set<PendingUpgrade>();

  constructor(
    private readonly timeoutMs: number,
    /** Called when an upgrade's deadline passes first; the socket is destroyed right after. */
    private readonly onTimeout: () => void,
  ) {}

  get inFlight(): number {
    return this.count;
  }

  begin(socket: Socket): PendingUpgrade {
    this.count++;
    return new PendingUpgrade(this, socket, this.timeoutMs);
  }

  /** Ends every wait for ?channels at once (shutdown): those upgrades then see the drain. */
  stopWaiting(): void {
    for (const upgrade of [...this.waiting]) upgrade.stopWaiting();
  }

  /** @internal PendingUpgrade's side of the bookkeeping. */
  release(upgrade: PendingUpgrade, timedOut: boolean): void {
    this.count--;
    this.waiting.delete(upgrade);
    if (timedOut) this.onTimeout();
  }

  /** @internal */
  track(upgrade: PendingUpgrade, waiting: boolean): void {
    if (waiting) this.waiting.add(upgrade);
    else this.waiting.delete(upgrade);
  }
}

export class PendingUpgrade {
  private done = false;
  private readonly deadline: NodeJS.Timeout;
  private endWait: (() => void) | null = null;
  private readonly onClose = (): void => this.finish();

  constructor(
    private readonly owner: PendingUpgrades,
    private readonly socket: Socket,
    timeoutMs: number,
  ) {
    this.deadline = setTimeout(() => {
      if (this.done) return;
      this.release(true);
      socket.destroy();
    }, timeoutMs);
    socket.once('close', this.onClose);
  }

  /** True once it opened, was refused, timed out or its socket closed: nothing more may be done with it. */
  get settled(): boolean {
    return this.done;
  }

  /** Gives back the slot and the deadline. Idempotent. */
  finish(): void {
    if (!this.done) this.release(false);
  }

  /**
   * Settles when `live` does, or resolves after maxMs or at stopWaiting(), whichever is first.
   * While the bus is up, a ?channels upgrade opens only once its channels are live on it.
   */
  waitFor(live: Promise<unknown>, maxMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const stopped = new Promise<void>((resolve) => {
      this.endWait = resolve;
      timer = setTimeout(resolve, maxMs);
    });
    this.owner.track(this, true);
    return Promise.race([live.then(() => undefined), stopped]).finally(() => {
      clearTimeout(timer);
      this.endWait = null;
      this.owner.track(this, false);
    });
  }

  /** @internal */
  stopWaiting(): void {
    this.endWait?.();
  }

  private release(timedOut: boolean): void {
    this.done = true;
    clearTimeout(this.deadline);
    // Its closure holds this upgrade; left on the socket, it would stay for the connection's
    // whole life (about 3 KB per idle connection, measured with the bench's (c)).
    this.socket.off('close', this.onClose);
    this.owner.release(this, timedOut);
  }
}

// The pub/sub liveness probe. A health PING proves a connection answers commands; it does not
// prove that a message published through Redis comes back on the subscriber connection (a
// subscriber can be connected yet starved: pushes lost on the way, a paused PUBLISH path, the two
// connections on different servers). So every interval the gateway publishes a probe on a channel
// of its own and expects it back within the timeout; until it is back, the bus is not ready.

export interface ProbeOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export interface ProbeHost {
  /** Whether a probe can be published now (publisher up, subscriber resubscribed). */
  canSend(): boolean;
  /** Publishes one probe payload on the gateway's private channel; failures just mean no echo. */
  send(payload: Buffer): void;
  /** The probe state flipped: a probe came back, one timed out, or the subscriber was lost. */
  changed(ok: boolean, why: 'echo' | 'timeout' | 'reset'): void;
}

/** Where the probe counts: the gateway's Stats. */
export interface ProbeCounts {
  busProbeOk: number;
  busProbeFailures: number;
}

const NONCE_BYTES = 6;

export class Probe {
  private ok = false;
  private sent = 0;
  /** The highest nonce that came back. */
  private returned = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: ProbeOptions,
    private readonly host: ProbeHost,
    private readonly counts: ProbeCounts,
  ) {}

  /** A probe published after the current subscription was made has come back. */
  get isOk(): boolean {
    return this.ok;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      if (this.host.canSend()) this.sendNow();
    }, this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Publishes a probe at once (after a resubscribe, so readiness need not wait a whole interval). */
  sendNow(): void {
    if (this.timer === null) return;
    const nonce = ++this.sent;
    const payload = Buffer.allocUnsafe(NONCE_BYTES);
    payload.writeUIntBE(nonce, 0, NONCE_BYTES);
    this.host.send(payload);
    setTimeout(() => this.expire(nonce), this.options.timeoutMs).unref();
  }

  /** A probe arrived on the private channel. Any probe proves the current subscription delivers. */
  received(payload: Buffer): void {
    if (payload.length !== NONCE_BYTES) return;
    const nonce = payload.readUIntBE(0, NONCE_BYTES);
    if (nonce > this.returned) this.returned = nonce;
    this.set(true, 'echo');
  }

  /** The subscriber connection was lost: its successor must prove itself with a fresh probe. */
  reset(): void {
    this.set(false, 'reset');
  }

  private expire(nonce: number): void {
    if (this.returned >= nonce || this.timer === null) return;
    this.counts.busProbeFailures++;
    this.set(false, 'timeout');
  }

  private set(ok: boolean, why: 'echo' | 'timeout' | 'reset'): void {
    this.counts.busProbeOk = ok ? 1 : 0;
    if (ok === this.ok) return;
    this.ok = ok;
    this.host.changed(ok, why);
  }
}

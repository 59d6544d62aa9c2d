// Dead-connection detection: a connection is dead when nothing (message, ack, error or ping
// reply) has arrived for timeoutMs; after half of that in silence the client sends a ping, so an
// idle but healthy connection answers in time. Pure: time is passed in.

export type Check =
  | { readonly action: 'wait'; readonly nextInMs: number }
  | { readonly action: 'ping'; readonly nextInMs: number }
  | { readonly action: 'dead' };

export class Liveness {
  private lastAt = 0;
  private pinged = false;

  constructor(private readonly timeoutMs: number) {}

  /** Something arrived (called per frame: two writes, nothing allocated). */
  received(now: number): void {
    this.lastAt = now;
    this.pinged = false;
  }

  /** What to do at `now`, and when to look again. */
  check(now: number): Check {
    const idle = now - this.lastAt;
    if (idle >= this.timeoutMs) return { action: 'dead' };
    const half = this.timeoutMs / 2;
    if (!this.pinged && idle >= half) {
      this.pinged = true;
      return { action: 'ping', nextInMs: this.timeoutMs - idle };
    }
    return { action: 'wait', nextInMs: (this.pinged ? this.timeoutMs : half) - idle };
  }
}

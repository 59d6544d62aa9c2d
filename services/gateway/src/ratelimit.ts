// A per-client inbound token bucket. Pure: the caller passes the clock, so tests can drive it.
//
// Each inbound frame (message or ping) takes a token; tokens refill at `ratePerSec` up to `burst`.
// A frame with no token is refused. The first refusal after an accepted frame is reported, so the
// client gets one error frame per run of refusals rather than one per frame. A client with more
// than `burst` frames refused within one second (counted from the first refusal of that second)
// is abusing the limit and is to be closed.

export const Verdict = {
  /** Accepted: handle the frame. */
  Ok: 0,
  /** Refused, first of a run: tell the client. */
  Refused: 1,
  /** Refused again in the same run: ignore the frame silently (it is counted). */
  RefusedAgain: 2,
  /** Refused, and the refusals this second exceed the burst: close the connection. */
  Abuse: 3,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

const WINDOW_MS = 1000;

export class TokenBucket {
  private tokens: number;
  private last: number;
  private refusing = false;
  private windowStart = Number.NEGATIVE_INFINITY;
  private refusedInWindow = 0;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.last = nowMs;
  }

  take(nowMs: number): Verdict {
    const elapsed = nowMs - this.last;
    this.last = nowMs;
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSec) / 1000);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.refusing = false;
      return Verdict.Ok;
    }
    if (nowMs - this.windowStart >= WINDOW_MS) {
      this.windowStart = nowMs;
      this.refusedInWindow = 0;
    }
    if (++this.refusedInWindow > this.burst) return Verdict.Abuse;
    if (this.refusing) return Verdict.RefusedAgain;
    this.refusing = true;
    return Verdict.Refused;
  }
}

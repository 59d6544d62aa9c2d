// What an operator sees while a Redis connection is failing. ioredis reports every failed attempt
// (a wrong REDIS_URL retries for ever, up to every 2 s per connection), so one line per attempt
// would bury everything else, and none would hide the cause. Per connection: its first failure
// is logged at warn with the cause, then at most one line per interval with how many attempts
// failed meanwhile, then one line at info when it is back, with how long it was down. Pure: it
// says what to log, the shell logs it.

/** At most one "still failing" line per connection per interval. */
export const OUTAGE_LOG_INTERVAL_MS = 30_000;

export interface OutageLine {
  readonly level: 'warn' | 'info';
  readonly msg: string;
}

/** The lines, one entry each. */
export const OutageLines = {
  /** First failure of a connection that was never up: a wrong or unreachable REDIS_URL. */
  Unreachable: { level: 'warn', msg: 'redis unreachable' },
  /** First failure of a connection that was up. */
  Lost: { level: 'warn', msg: 'redis connection lost' },
  /** Still failing, at most once per interval. */
  StillDown: { level: 'warn', msg: 'redis still unreachable' },
  /** Up again after an outage. */
  Restored: { level: 'info', msg: 'redis connection restored' },
} as const satisfies Record<string, OutageLine>;

export interface OutageReport {
  readonly line: OutageLine;
  /** Failed attempts since the previous line of this outage (Restored: in the whole outage); not on the first line. */
  readonly failedAttempts?: number;
  /** Since the outage began; not on the first line. */
  readonly downMs?: number;
  /** The last error ioredis reported, or that the connection closed. */
  readonly err?: string;
}

const CLOSED = 'connection closed';

export class OutageLog {
  private everUp = false;
  private down = false;
  private since = 0;
  private lastLine = 0;
  /** Failed attempts since the last line. */
  private failures = 0;
  private total = 0;
  private cause: string | null = null;

  constructor(
    private readonly intervalMs = OUTAGE_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** ioredis reported an error: the cause of the close that follows it. */
  error(message: string): void {
    this.cause = message;
  }

  /** The connection closed, or an attempt to open it failed: a line to log, or null. */
  failed(): OutageReport | null {
    const now = this.now();
    const err = this.cause ?? CLOSED;
    this.cause = null;
    this.total++;
    if (!this.down) {
      this.down = true;
      this.since = now;
      this.lastLine = now;
      this.failures = 0;
      this.total = 1;
      return { line: this.everUp ? OutageLines.Lost : OutageLines.Unreachable, err };
    }
    this.failures++;
    if (now - this.lastLine < this.intervalMs) return null;
    const failedAttempts = this.failures;
    this.lastLine = now;
    this.failures = 0;
    return { line: OutageLines.StillDown, failedAttempts, downMs: now - this.since, err };
  }

  /** The connection is up: the recovery line when it ends an outage, else null. */
  up(): OutageReport | null {
    this.everUp = true;
    this.cause = null;
    if (!this.down) return null;
    this.down = false;
    return { line: OutageLines.Restored, failedAttempts: this.total, downMs: this.now() - this.since };
  }
}

/** host:port of a Redis URL, never its credentials (ioredis's defaults when absent). */
export function redisAddress(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname === '' ? 'localhost' : parsed.hostname}:${parsed.port === '' ? '6379' : parsed.port}`;
}

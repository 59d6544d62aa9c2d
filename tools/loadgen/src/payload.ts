// The benchmark payload: a fixed-size string "@<run>:<sent µs>:xxxx…". The send time is on the
// monotonic clock (CLOCK_MONOTONIC, shared by every process on the machine), so a subscriber in
// another process can subtract it from its own clock. The run number lets a subscriber ignore
// stragglers of a previous run.

const AT = 0x40;
const COLON = 0x3a;
const ZERO = 0x30;

/** Microseconds on the machine-wide monotonic clock. */
export function nowMicros(): number {
  return Math.floor(Number(process.hrtime.bigint()) / 1000);
}

export function makePayload(run: number, sentMicros: number, size: number): string {
  const head = `@${run}:${sentMicros}:`;
  return head.length >= size ? head : head + 'x'.repeat(size - head.length);
}

/**
 * Reads run and send time from the bytes buf[start, end) of a received message (whatever envelope
 * surrounds the payload). Returns false when they hold no payload. Read in place: no allocation.
 */
export function readPayload(buf: Buffer, start: number, end: number, out: { run: number; sent: number }): boolean {
  let i = buf.indexOf(AT, start);
  if (i < 0 || i >= end) return false;
  let run = 0;
  for (i++; i < end && buf[i] !== COLON; i++) run = run * 10 + (buf[i]! - ZERO);
  let sent = 0;
  for (i++; i < end && buf[i] !== COLON; i++) sent = sent * 10 + (buf[i]! - ZERO);
  if (i >= end) return false;
  out.run = run;
  out.sent = sent;
  return true;
}

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
 * Reads run and send time from a received frame's bytes (whatever envelope surrounds the payload).
 * Returns false when the bytes hold no payload. Digits are read in place: no string, no allocation.
 */
export function readPayload(buf: Buffer, out: { run: number; sent: number }): boolean {
  let i = buf.indexOf(AT);
  if (i < 0) return false;
  let run = 0;
  for (i++; i < buf.length && buf[i] !== COLON; i++) run = run * 10 + (buf[i]! - ZERO);
  let sent = 0;
  for (i++; i < buf.length && buf[i] !== COLON; i++) sent = sent * 10 + (buf[i]! - ZERO);
  if (i >= buf.length) return false;
  out.run = run;
  out.sent = sent;
  return true;
}

// Reconnect delays. Pure: the random source is passed in, so tests can draw it.

/** A source of uniform numbers in [0, 1), like Math.random. */
export type Random = () => number;

/**
 * Full jitter (the AWS Architecture Blog's "Exponential Backoff and Jitter"): uniform in
 * [0, min(max, min * 2^attempt)). Spreading over the whole window, not around its top, is what
 * keeps clients that failed together from retrying together.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: Random): number {
  // 2^attempt overflows to Infinity past ~1024; min() clamps it, but cap the exponent anyway.
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * ceiling);
}

/**
 * After a drain (1001) or a token refresh: soon, but spread over [0, min), so the clients of a
 * draining gateway do not all arrive at the survivors in the same instant.
 */
export function soonDelay(minMs: number, random: Random): number {
  return Math.floor(random() * minMs);
}

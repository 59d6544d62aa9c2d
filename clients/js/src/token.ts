// When a JWT expires, read from its own payload: a client that missed the 4001 (the connection
// had already dropped) must not reconnect with a dead token. A browser cannot see the 401 that
// would follow (only a close 1006 before open), so it would retry that token until the end of
// time. The token is not verified here; a token that cannot be read is simply never called
// stale. Pure.

/** `exp` in ms since the epoch, or undefined when the token is not a JWT with a numeric exp. */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined || payload === '') return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4)));
    const exp = (claims as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** A token that expires within this margin is fetched anew before it is used again. */
export const EXPIRY_MARGIN_MS = 5000;

/** Whether a token read from its payload expires by `now` plus the margin. */
export function isStale(token: string, now: number): boolean {
  const exp = tokenExpiry(token);
  return exp !== undefined && exp <= now + EXPIRY_MARGIN_MS;
}

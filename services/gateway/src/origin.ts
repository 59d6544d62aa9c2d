// The origin rule, for the upgrade and every HTTP route that acts (POST /publish). Pure.
//
// A browser sends Origin on every cross-site request, including the "simple" ones it sends without
// a preflight (a no-cors text/plain POST), so the gateway must refuse on it, not rely on CORS:
// - no Origin: not a browser page (servers, curl), which could claim any Origin anyway: allowed;
// - the gateway's own origin (scheme-less host:port equal to Host): allowed;
// - any other origin only when ALLOWED_ORIGINS lists it, or holds `*` (explicitly every origin).
// Tokens, not origins, are the access control; this stops pages riding their visitors' browsers.
import { ANY_ORIGIN } from './config.js';

/** ALLOWED_ORIGINS as config.ts parses it: normalised origins, [ANY_ORIGIN] for `*`, undefined when unset (same origin only). */
export type AllowedOrigins = readonly string[] | undefined;

export function originAllowed(allowed: AllowedOrigins, origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true;
  const lower = origin.toLowerCase();
  if (allowed !== undefined && (allowed.includes(ANY_ORIGIN) || allowed.includes(lower))) return true;
  return host !== undefined && sameHost(lower, host.toLowerCase());
}

/**
 * Host read with the origin's scheme, so a default port is the same written or not (`gw:80` is
 * `http://gw`). `Origin: null` (sandboxed frames, file://) or anything unparseable is never our own.
 */
function sameHost(origin: string, host: string): boolean {
  try {
    const url = new URL(origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
    const own = new URL(`${url.protocol}//${host}`);
    return own.host === url.host && own.pathname === '/' && own.username === '';
  } catch {
    return false;
  }
}

/** CORS headers for a response to an allowed cross-origin request; none for same-origin or no Origin. */
export function corsHeaders(origin: string | undefined, host: string | undefined): Record<string, string> {
  if (origin === undefined || (host !== undefined && sameHost(origin.toLowerCase(), host.toLowerCase()))) return {};
  return { 'access-control-allow-origin': origin, vary: 'Origin' };
}

/** Seconds a browser may cache a preflight answer. */
export const PREFLIGHT_MAX_AGE_S = 600;

/** The answer to an allowed preflight: enough for a browser to POST JSON (or GET /history) with a bearer token. */
export function preflightHeaders(origin: string, methods = 'POST'): Record<string, string> {
  return {
    'access-control-allow-origin': origin,
    'access-control-allow-methods': methods,
    'access-control-allow-headers': 'content-type, authorization',
    'access-control-max-age': String(PREFLIGHT_MAX_AGE_S),
    vary: 'Origin',
  };
}

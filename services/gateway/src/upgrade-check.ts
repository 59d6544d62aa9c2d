// The pure check of a WebSocket upgrade: what the request asks for (its channels) or the refusal
// it gets. Token verification is async (jose), so the check runs in two parts around it:
// checkRequest before the token is verified, checkGrant after. No I/O, no clock.
import type { IncomingHttpHeaders } from 'node:http';
import { type AuthResult, type Grant, isAuthFailure } from './auth.js';
import { Refusal, type Refused, type UpgradeRejectReason } from './codes.js';
import { type AllowedOrigins, originAllowed } from './origin.js';
import { isProtocolError, parseChannelsQuery } from './protocol.js';

export type UpgradeRefused = Refused<UpgradeRejectReason>;

export interface UpgradeRules {
  readonly maxConnections: number;
  readonly maxChannelsPerClient: number;
  readonly allowedOrigins: AllowedOrigins;
}

/** The gateway's state as the request meets it. */
export interface UpgradeState {
  readonly draining: boolean;
  /** Open connections plus upgrades in progress. */
  readonly connections: number;
}

/** The parts of the request the check reads (an IncomingMessage has them). */
export interface UpgradeRequest {
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

export interface Asked {
  readonly url: URL;
  readonly channels: string[];
}

export function isRefused<T extends object>(result: T | Refused<string>): result is Refused<string> {
  return 'refusal' in result;
}

const refused = (refusal: Refusal<UpgradeRejectReason>, detail?: string): UpgradeRefused =>
  detail === undefined ? { refusal } : { refusal, detail };

/** Everything decidable before the token is verified, cheapest first: draining, limit, route, origin, channels. */
export function checkRequest(req: UpgradeRequest, rules: UpgradeRules, state: UpgradeState): Asked | UpgradeRefused {
  if (state.draining) return refused(Refusal.Draining);
  if (state.connections >= rules.maxConnections) return refused(Refusal.TooManyConnections);
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://gateway');
  } catch {
    return refused(Refusal.InvalidMessage, 'unparseable request URL');
  }
  if (url.pathname !== '/ws') return refused(Refusal.NotFound, `no WebSocket endpoint at ${url.pathname}`);
  if (!originAllowed(rules.allowedOrigins, req.headers.origin, req.headers.host)) return refused(Refusal.OriginForbidden);
  const channels = parseChannelsQuery(url.searchParams.get('channels'));
  if (isProtocolError(channels)) return refused(Refusal.InvalidChannel, channels.message);
  if (channels.length > rules.maxChannelsPerClient) return refused(Refusal.TooManyChannels);
  return { url, channels };
}

/** After verification: a grant that covers every asked channel, or the refusal. */
export function checkGrant(asked: Asked, result: AuthResult): Grant | UpgradeRefused {
  if (isAuthFailure(result)) return refused(Refusal.Unauthorized, result.message);
  const denied = asked.channels.find((c) => !result.subscribe.allows(c));
  if (denied !== undefined) return refused(Refusal.SubscribeForbidden, `the token does not allow subscribing to ${denied}`);
  return result;
}

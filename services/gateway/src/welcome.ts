// The welcome frame, for a client that asks for it with `?welcome` on the upgrade URL (the demo
// page does): which gateway took the connection. Behind a load balancer an HTTP header could only
// name the gateway that served the page, not the one holding the WebSocket. Opt-in, so existing
// clients see no new first frame. Pure.
import { isIPv6 } from 'node:net';
import { hostname } from 'node:os';

export const WELCOME_PARAM = 'welcome';

/** The request URL (as node gives it, path and query) asks for a welcome. */
export function wantsWelcome(requestUrl: string | undefined): boolean {
  const query = requestUrl?.indexOf('?') ?? -1;
  return query >= 0 && new URLSearchParams(requestUrl!.slice(query + 1)).has(WELCOME_PARAM);
}

/** The local end of the client's socket: the gateway's own address and port, as the load balancer reached it. */
export function gatewayAddress(address: string | undefined, port: number | undefined): string {
  const plain = (address ?? 'unknown').replace(/^::ffff:/, '');
  return `${isIPv6(plain) ? `[${plain}]` : plain}:${port ?? 0}`;
}

/** `{"op":"welcome","gateway":"10.0.0.5:8080","host":"..."}`: the address, and the host name (a container or pod name). */
export function encodeWelcome(address: string | undefined, port: number | undefined, host: string = hostname()): Buffer {
  return Buffer.from(JSON.stringify({ op: 'welcome', gateway: gatewayAddress(address, port), host }));
}

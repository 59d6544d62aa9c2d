// The wire protocol as the client sees it: commands it sends, frames it receives. Pure.
import type { Position } from './position.js';

export type Id = number;

export const encodeSubscribe = (channel: string, id: Id, since: Position | undefined): string =>
  JSON.stringify(since === undefined ? { op: 'subscribe', channel, id } : { op: 'subscribe', channel, id, since });

export const encodeUnsubscribe = (channel: string, id: Id): string => JSON.stringify({ op: 'unsubscribe', channel, id });

export const encodePublish = (channel: string, data: unknown, id: Id): string =>
  JSON.stringify({ op: 'publish', channel, data, id });

/** Any reply carrying this id proves the connection alive (gateways without `ping` answer `unknown_op`). */
export const encodePing = (id: Id): string => JSON.stringify({ op: 'ping', id });

/** A frame from the gateway; unknown ops and fields are ignored. */
export interface Frame {
  readonly op?: unknown;
  readonly id?: unknown;
  readonly channel?: unknown;
  readonly data?: unknown;
  readonly offset?: unknown;
  readonly epoch?: unknown;
  readonly recovered?: unknown;
  readonly code?: unknown;
  readonly message?: unknown;
}

/** Parses a text frame; null for anything that is not a JSON object. */
export function parseFrame(data: unknown): Frame | null {
  if (typeof data !== 'string') return null;
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Frame) : null;
  } catch {
    return null;
  }
}

/** The WebSocket surface the client uses: browsers' WebSocket and Node's `ws` both have it. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // Handlers take `never` so that implementations with richer event types (DOM, ws) still fit.
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
}

export type WebSocketConstructor = new (url: string) => SocketLike;

/** readyState of an open socket (the same in every implementation). */
export const OPEN = 1;

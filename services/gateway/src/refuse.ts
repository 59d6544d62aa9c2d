// Writes a Refusal (codes.ts) to the wire: as a raw HTTP answer on an upgrade socket, or on an
// HTTP response. The body is always {"code","message"}; the status, code and message come from the
// entry, the message optionally replaced by a detail naming the request's input.
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Refusal } from './codes.js';

export type Headers = Record<string, string>;

/** A WebSocket-only refusal (no status) never reaches HTTP; if one did, that is a server fault. */
const statusOf = (refusal: Refusal<string>): number => refusal.status ?? 500;

function body(refusal: Refusal<string>, detail: string | undefined): string {
  return JSON.stringify({ code: refusal.code, message: detail ?? refusal.message });
}

/** Answers an upgrade request before any WebSocket state exists, then closes the socket. */
export function refuse(socket: Socket, refusal: Refusal<string>, detail?: string): void {
  const text = body(refusal, detail);
  const status = statusOf(refusal);
  const challenge = status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '';
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `${challenge}Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    );
  }
  socket.destroySoon();
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Headers = {}): void {
  sendText(res, status, JSON.stringify(value), headers);
}

function sendText(res: ServerResponse, status: number, text: string, headers: Headers): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** An HTTP error answer. 401 challenges for a bearer token; 401 and 413 close the connection (the body may be unread). */
export function sendRefusal(res: ServerResponse, refusal: Refusal<string>, detail?: string, headers: Headers = {}): void {
  const status = statusOf(refusal);
  const extra: Headers = { ...headers };
  if (status === 401) extra['www-authenticate'] = 'Bearer';
  if (status === 401 || status === 413) extra.connection = 'close';
  sendText(res, status, body(refusal, detail), extra);
}

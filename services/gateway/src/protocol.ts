// The wire protocol: parsing client commands and encoding server messages. Pure functions.
import { ErrorCode } from './codes.js';

/** 1 to 128 characters of [A-Za-z0-9_.:-]. */
const CHANNEL_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

export function isValidChannel(value: unknown): value is string {
  return typeof value === 'string' && CHANNEL_RE.test(value);
}

/** An optional client-chosen request id; when present the gateway replies with an ack or an error carrying it. */
export type RequestId = string | number;

export type Command =
  | { readonly op: 'subscribe' | 'unsubscribe'; readonly channel: string; readonly id?: RequestId }
  | { readonly op: 'publish'; readonly channel: string; readonly data: unknown; readonly id?: RequestId };

export interface ProtocolError {
  readonly error: ErrorCode;
  readonly message: string;
  readonly id?: RequestId;
  /** The operation, once it was recognised (so a bad publish can be counted as a rejected publish). */
  readonly op?: Command['op'];
}

export type ParseResult = Command | ProtocolError;

export function isProtocolError<T extends object>(result: T | ProtocolError): result is ProtocolError {
  return !Array.isArray(result) && 'error' in result;
}

function fail(error: ErrorCode, message: string, id?: RequestId, op?: Command['op']): ProtocolError {
  const result: { error: ErrorCode; message: string; id?: RequestId; op?: Command['op'] } = { error, message };
  if (id !== undefined) result.id = id;
  if (op !== undefined) result.op = op;
  return result;
}

function readId(value: unknown): RequestId | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && value.length <= 64) return value;
  return null;
}

/** Parses JSON that must be an object; `what` names it in the error ("frame", "body"). */
function parseObject(text: string, what: string): Record<string, unknown> | ProtocolError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail(ErrorCode.InvalidJson, `${what} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(ErrorCode.InvalidJson, `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** Parses one client text frame. Never throws. */
export function parseCommand(text: string): ParseResult {
  const msg = parseObject(text, 'frame');
  if (isProtocolError(msg)) return msg;
  const id = readId(msg.id);
  if (id === null) {
    return fail(ErrorCode.InvalidMessage, 'id must be an integer or a string of at most 64 characters');
  }
  const op = msg.op;
  if (typeof op !== 'string') return fail(ErrorCode.InvalidMessage, 'op must be a string', id);
  if (op !== 'subscribe' && op !== 'unsubscribe' && op !== 'publish') {
    return fail(ErrorCode.UnknownOp, 'op must be subscribe, unsubscribe or publish', id);
  }
  if (!isValidChannel(msg.channel)) {
    return fail(ErrorCode.InvalidChannel, 'channel must be 1-128 characters of [A-Za-z0-9_.:-]', id, op);
  }
  const channel = msg.channel;
  if (op === 'publish') {
    if (!('data' in msg)) return fail(ErrorCode.InvalidMessage, 'publish needs a data field', id, op);
    return id === undefined ? { op, channel, data: msg.data } : { op, channel, data: msg.data, id };
  }
  return id === undefined ? { op, channel } : { op, channel, id };
}

/** Parses the body of POST /publish: {"channel":C,"data":ANY}. Never throws. */
export function parsePublishBody(text: string): { channel: string; data: unknown } | ProtocolError {
  const body = parseObject(text, 'body');
  if (isProtocolError(body)) return body;
  if (!isValidChannel(body.channel)) {
    return fail(ErrorCode.InvalidChannel, 'channel must be 1-128 characters of [A-Za-z0-9_.:-]');
  }
  if (!('data' in body)) return fail(ErrorCode.InvalidMessage, 'body needs a data field');
  return { channel: body.channel, data: body.data };
}

/**
 * Encodes the message every subscriber receives. These bytes travel over the bus unchanged,
 * so a gateway frames what it receives without parsing or re-serializing it.
 * The channel needs no escaping: isValidChannel admits no JSON-special characters.
 */
export function encodeMessage(channel: string, data: unknown): Buffer {
  return Buffer.from(`{"op":"message","channel":"${channel}","data":${JSON.stringify(data) ?? 'null'}}`);
}

/** encodeMessage for client-supplied data: JSON that parses can still be too deeply nested to re-encode. */
export function tryEncodeMessage(channel: string, data: unknown): Buffer | ProtocolError {
  try {
    return encodeMessage(channel, data);
  } catch {
    return fail(ErrorCode.InvalidMessage, 'data is nested too deeply to encode', undefined, 'publish');
  }
}

export function encodeError(code: ErrorCode, message: string, id?: RequestId): Buffer {
  const body = id === undefined ? { op: 'error', code, message } : { op: 'error', code, message, id };
  return Buffer.from(JSON.stringify(body));
}

export function encodeAck(id: RequestId): Buffer {
  return Buffer.from(JSON.stringify({ op: 'ack', id }));
}

/** Parses the `?channels=a,b` query of an upgrade URL. */
export function parseChannelsQuery(search: string | null): string[] | ProtocolError {
  if (search === null || search === '') return [];
  const names = search.split(',');
  for (const name of names) {
    if (!CHANNEL_RE.test(name)) {
      return fail(ErrorCode.InvalidChannel, `invalid channel in ?channels: ${JSON.stringify(name.slice(0, 130))}`);
    }
  }
  return [...new Set(names)];
}

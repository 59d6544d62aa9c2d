// The wire protocol: parsing client commands and encoding server messages. Pure functions.
import type { HistoryRead } from './bus/history-read.js';
import { type Position, isValidEpoch, messageData } from './bus/position.js';
import { ErrorCode } from './codes.js';

/** 1 to 128 characters of [A-Za-z0-9_.:-]. */
const CHANNEL_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

export function isValidChannel(value: unknown): value is string {
  return typeof value === 'string' && CHANNEL_RE.test(value);
}

/** An optional client-chosen request id; when present the gateway replies with an ack or an error carrying it. */
export type RequestId = string | number;

export type Command =
  /** since: the last position the client has of the channel (recovery); checked for shape only. */
  | { readonly op: 'subscribe'; readonly channel: string; readonly id?: RequestId; readonly since?: Position }
  | { readonly op: 'unsubscribe'; readonly channel: string; readonly id?: RequestId }
  | { readonly op: 'publish'; readonly channel: string; readonly data: unknown; readonly id?: RequestId }
  /** A liveness check: acked when it has an id, otherwise nothing happens. */
  | { readonly op: 'ping'; readonly id?: RequestId };

const OPS: ReadonlySet<string> = new Set<Command['op']>(['subscribe', 'unsubscribe', 'publish', 'ping']);
const isOp = (op: string): op is Command['op'] => OPS.has(op);

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
  if (!isOp(op)) {
    return fail(ErrorCode.UnknownOp, 'op must be subscribe, unsubscribe, publish or ping', id);
  }
  if (op === 'ping') return id === undefined ? { op } : { op, id };
  if (!isValidChannel(msg.channel)) {
    return fail(ErrorCode.InvalidChannel, 'channel must be 1-128 characters of [A-Za-z0-9_.:-]', id, op);
  }
  const channel = msg.channel;
  if (op === 'publish') {
    if (!('data' in msg)) return fail(ErrorCode.InvalidMessage, 'publish needs a data field', id, op);
    return id === undefined ? { op, channel, data: msg.data } : { op, channel, data: msg.data, id };
  }
  if (op === 'subscribe' && msg.since !== undefined) {
    const since = readPosition(msg.since);
    if (since === null) {
      return fail(ErrorCode.InvalidMessage, 'since must be {"offset":N,"epoch":"E"} with N a whole number and E an epoch the gateway sent', id, op);
    }
    return id === undefined ? { op, channel, since } : { op, channel, id, since };
  }
  if (op === 'subscribe') return id === undefined ? { op, channel } : { op, channel, id };
  return id === undefined ? { op, channel } : { op, channel, id };
}

/** A `since`: an object with a whole offset and a well-formed epoch, nothing else read. */
export function readPosition(value: unknown): Position | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { offset, epoch } = value as Record<string, unknown>;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || !isValidEpoch(epoch)) return null;
  return { offset, epoch };
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

/**
 * An ack; a subscribe's carries the channel's position when history is on, and `recovered` when it
 * had a `since` (false whenever nothing was replayed, history off included).
 */
export function encodeAck(id: RequestId, position?: Position | null, recovered?: boolean): Buffer {
  const body: { op: 'ack'; id: RequestId; offset?: number; epoch?: string; recovered?: boolean } = { op: 'ack', id };
  if (position !== null && position !== undefined) {
    body.offset = position.offset;
    body.epoch = position.epoch;
  }
  if (recovered !== undefined) body.recovered = recovered;
  return Buffer.from(JSON.stringify(body));
}

/** History could not fill a gap: everything up to position is gone, the next message is offset + 1. */
export function encodeLost(channel: string, position: Position): Buffer {
  return Buffer.from(`{"op":"lost","channel":"${channel}","offset":${position.offset},"epoch":"${position.epoch}"}`);
}

export interface HistoryQuery {
  readonly channel: string;
  /** Messages after this offset (0: from the oldest kept). */
  readonly since: number;
  /** Only messages of this epoch; null: the current one. */
  readonly epoch: string | null;
  readonly limit: number;
}

const WHOLE = /^\d{1,15}$/;

/** GET /history?channel=C&since=N&epoch=E&limit=L; limit defaults to (and may not exceed) maxLimit (HISTORY_SIZE). Never throws. */
export function parseHistoryQuery(params: URLSearchParams, maxLimit: number): HistoryQuery | ProtocolError {
  const channel = params.get('channel');
  if (!isValidChannel(channel)) return fail(ErrorCode.InvalidChannel, 'channel must be 1-128 characters of [A-Za-z0-9_.:-]');
  const since = params.get('since') ?? '0';
  if (!WHOLE.test(since)) return fail(ErrorCode.InvalidMessage, 'since must be a whole number (an offset)');
  const epoch = params.get('epoch');
  if (epoch !== null && !isValidEpoch(epoch)) return fail(ErrorCode.InvalidMessage, 'epoch must be an epoch the gateway sent');
  const limit = params.get('limit') ?? String(maxLimit);
  if (!WHOLE.test(limit) || Number(limit) < 1 || Number(limit) > maxLimit) {
    return fail(ErrorCode.InvalidMessage, `limit must be a whole number from 1 to ${maxLimit} (HISTORY_SIZE)`);
  }
  return { channel, since: Number(since), epoch, limit: Number(limit) };
}

/**
 * The answer of GET /history: {"epoch":E,"offset":TOP,"messages":[{"offset":N,"data":ANY},...]}.
 * Each data is sliced out of the stored client bytes, never parsed or re-encoded.
 */
export function encodeHistory(channel: string, read: HistoryRead): Buffer {
  const parts: Buffer[] = [Buffer.from(`{"epoch":"${read.epoch}","offset":${read.top},"messages":[`)];
  read.messages.forEach((m, i) => {
    parts.push(Buffer.from(`${i === 0 ? '' : ','}{"offset":${m.offset},"data":`), messageData(m.bytes, channel, m.offset, read.epoch), CLOSE_ITEM);
  });
  parts.push(CLOSE_HISTORY);
  return Buffer.concat(parts);
}

const CLOSE_ITEM = Buffer.from('}');
const CLOSE_HISTORY = Buffer.from(']}');

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

// The wire protocol: parsing client commands and encoding server messages. Pure functions.
import { isUtf8 } from 'node:buffer';
import type { HistoryRead } from './bus/history-read.js';
import { type Position, isValidEpoch, messageData } from './bus/position.js';
import { ErrorCode } from './codes.js';
import { MemberSpan } from './json-span.js';

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
  /** raw: where the data's bytes are in the frame, when parsed from bytes. */
  | { readonly op: 'publish'; readonly channel: string; readonly data: unknown; readonly raw?: JsonBytes; readonly id?: RequestId }
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
function parseObject(json: string | Buffer, what: string): Record<string, unknown> | ProtocolError {
  let value: unknown;
  try {
    value = JSON.parse(typeof json === 'string' ? json : json.toString('utf8'));
  } catch {
    return fail(ErrorCode.InvalidJson, `${what} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(ErrorCode.InvalidJson, `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Data nested deeper than this is refused (invalid_message). The gateway forwards the client's
 * bytes and never re-encodes them, but receivers do (an application's JSON.stringify overflows
 * its stack near 5,000 levels in V8, which is where the gateway's own re-encoding failed before
 * it spliced), and other parsers bound depth (Go's encoding/json at 10,000). A fixed bound is also
 * the same on every gateway, whatever its stack.
 */
export const MAX_DATA_DEPTH = 4096;

const dataSpan = new MemberSpan('data');

/** A JSON value as a client sent it: bytes [start, end) of buffer (no view is made: a subarray costs more than the scan of a short frame). */
export interface JsonBytes {
  readonly buffer: Buffer;
  readonly start: number;
  readonly end: number;
}

/**
 * Where the top-level `data` of a JSON object JSON.parse accepted lies in its bytes, which must
 * be UTF-8 (ws refuses other text frames with 1007; parsePublishBody checks): null when it nests
 * deeper than MAX_DATA_DEPTH, undefined when there is none.
 */
function dataBytes(json: Buffer): JsonBytes | null | undefined {
  if (!dataSpan.find(json)) return undefined;
  if (dataSpan.depth > MAX_DATA_DEPTH) return null;
  return { buffer: json, start: dataSpan.start, end: dataSpan.end };
}

const TOO_DEEP = `data nests deeper than ${MAX_DATA_DEPTH} levels`;

/**
 * Parses one client text frame. Never throws. From bytes (the WebSocket frame), a publish carries
 * its data's bytes as `raw`, so encoding copies them instead of re-encoding the parsed value.
 */
export function parseCommand(frame: string | Buffer): ParseResult {
  const msg = parseObject(frame, 'frame');
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
    const data = msg.data;
    if (typeof frame === 'string') return id === undefined ? { op, channel, data } : { op, channel, data, id };
    const raw = dataBytes(frame);
    if (raw === null) return fail(ErrorCode.InvalidMessage, TOO_DEEP, id, op);
    if (raw === undefined) return id === undefined ? { op, channel, data } : { op, channel, data, id };
    return id === undefined ? { op, channel, data, raw } : { op, channel, data, raw, id };
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

/** Parses the body of POST /publish: {"channel":C,"data":ANY}. Never throws. From bytes, as parseCommand. */
export function parsePublishBody(json: string | Buffer): { channel: string; data: unknown; raw?: JsonBytes } | ProtocolError {
  const body = parseObject(json, 'body');
  if (isProtocolError(body)) return body;
  if (!isValidChannel(body.channel)) {
    return fail(ErrorCode.InvalidChannel, 'channel must be 1-128 characters of [A-Za-z0-9_.:-]');
  }
  if (!('data' in body)) return fail(ErrorCode.InvalidMessage, 'body needs a data field');
  const { channel, data } = body;
  // A body is not checked for UTF-8 on the way in: its bad bytes became U+FFFD in the parse, and
  // re-encoding sends those, never the bad bytes.
  if (typeof json === 'string' || !isUtf8(json)) return { channel, data };
  const raw = dataBytes(json);
  if (raw === null) return fail(ErrorCode.InvalidMessage, TOO_DEEP);
  return raw === undefined ? { channel, data } : { channel, data, raw };
}

/**
 * Encodes the message every subscriber receives. These bytes travel over the bus unchanged,
 * so a gateway frames what it receives without parsing or re-serializing it.
 * The channel needs no escaping: isValidChannel admits no JSON-special characters.
 * With `raw` (the data's bytes as the client sent them) those bytes are copied, not re-encoded.
 */
export function encodeMessage(channel: string, data: unknown, raw?: JsonBytes): Buffer {
  if (raw !== undefined) return spliceMessage(channel, raw);
  return Buffer.from(`{"op":"message","channel":"${channel}","data":${JSON.stringify(data) ?? 'null'}}`);
}

/**
 * The message around data bytes, in one allocation. Short copies are byte loops: for a frame of
 * a hundred bytes, the calls into native write() and copy() cost more than the bytes.
 */
function spliceMessage(channel: string, raw: JsonBytes): Buffer {
  const { buffer, start, end } = raw;
  const at = MESSAGE_HEAD.length + channel.length;
  const h = at + DATA_KEY.length;
  const out = Buffer.allocUnsafe(h + end - start + 1);
  copyShort(MESSAGE_HEAD, 0, MESSAGE_HEAD.length, out, 0);
  for (let i = 0; i < channel.length; i++) out[MESSAGE_HEAD.length + i] = channel.charCodeAt(i); // ASCII: isValidChannel
  copyShort(DATA_KEY, 0, DATA_KEY.length, out, at);
  if (end - start > SHORT_COPY) buffer.copy(out, h, start, end);
  else copyShort(buffer, start, end, out, h);
  out[out.length - 1] = CLOSE_MESSAGE;
  return out;
}

function copyShort(from: Buffer, start: number, end: number, to: Buffer, at: number): void {
  for (let i = start; i < end; i++) to[at++] = from[i]!;
}

const MESSAGE_HEAD = Buffer.from('{"op":"message","channel":"');
const DATA_KEY = Buffer.from('","data":');
const SHORT_COPY = 128;
const CLOSE_MESSAGE = 0x7d;

/** encodeMessage for client-supplied data: JSON that parses can still be too deeply nested to re-encode. */
export function tryEncodeMessage(channel: string, data: unknown, raw?: JsonBytes): Buffer | ProtocolError {
  try {
    return encodeMessage(channel, data, raw);
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

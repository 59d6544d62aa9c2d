// Positions on the bus (history on): what travels when a message has an offset and an epoch.
//
// The publisher encodes the client frame once, without its closing brace (the head). The publish
// script (history-redis.ts), the only party that knows the offset and epoch, appends the tail
// `,"offset":N,"epoch":"E"}`, stores those client bytes in the stream and publishes them behind
// a small header, so a receiving gateway reads the position without parsing JSON and frames the
// client bytes as they are (a view, not a copy):
//
//   offset  bytes  field
//   0       1      magic 0xFD (never the first byte of UTF-8 JSON text, nor the envelope's 0xFE)
//   1       1      version 1
//   2       1      d: digits of the offset (1..15)
//   3       1      e: length of the epoch (1..64)
//   4       d      the offset, ASCII decimal (1, 2, 3 ... per channel)
//   4+d     e      the epoch, ASCII ([A-Za-z0-9_-], so it needs no JSON escaping)
//   4+d+e   ...    the client bytes: {"op":"message","channel":C,"data":ANY,"offset":N,"epoch":"E"}
//
// ASCII rather than binary fields because Lua builds them with string.format and concatenation,
// and a reader can check them in redis-cli. With HISTORY_SIZE=0 the envelope (envelope.ts) is used.

import { randomBytes } from 'node:crypto';

export const POSITION_MAGIC = 0xfd;
const VERSION = 1;
const DIGITS = 2;
const EPOCH_LENGTH = 3;
const FIELDS = 4;
/** 15 decimal digits stay exact in a double (Lua's number and JavaScript's). */
export const MAX_OFFSET_DIGITS = 15;
export const MAX_EPOCH_LENGTH = 64;
/** Random bytes per epoch: 72 bits, 12 base64url characters. */
export const EPOCH_BYTES = 9;
const EPOCH_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ZERO = 0x30;
const CLOSE_BRACE = 0x7d;

/** A position in a channel's history: the last offset accounted for, in that epoch. */
export interface Position {
  readonly offset: number;
  readonly epoch: string;
}

/** A message as the gateway holds it: its position and the exact bytes clients receive. */
export interface PositionedMessage extends Position {
  readonly bytes: Buffer;
}

/** An epoch is an opaque name; only what the server generates is valid (and safe inside JSON). */
export function isValidEpoch(value: unknown): value is string {
  return typeof value === 'string' && EPOCH_RE.test(value);
}

/** A fresh epoch from EPOCH_BYTES random bytes at start of bytes. */
export function epochFrom(bytes: Buffer, start = 0): string {
  return bytes.toString('base64url', start, start + EPOCH_BYTES);
}

/** Epoch candidates drawn per randomBytes call: every history script call spends one. */
const EPOCH_POOL = 256;

/** Fresh epoch candidates, EPOCH_POOL per randomBytes call: every script call needs one. */
export class EpochSource {
  private pool = Buffer.alloc(0);
  private at = 0;

  next(): string {
    if (this.at + EPOCH_BYTES > this.pool.length) {
      this.pool = randomBytes(EPOCH_BYTES * EPOCH_POOL);
      this.at = 0;
    }
    const epoch = epochFrom(this.pool, this.at);
    this.at += EPOCH_BYTES;
    return epoch;
  }
}

/** True when the message starts with a position header this version understands, lengths included. */
export function hasPosition(message: Buffer): boolean {
  if (message.length < FIELDS + 2 || message[0] !== POSITION_MAGIC || message[1] !== VERSION) return false;
  const d = message[DIGITS]!;
  const e = message[EPOCH_LENGTH]!;
  return d >= 1 && d <= MAX_OFFSET_DIGITS && e >= 1 && e <= MAX_EPOCH_LENGTH && FIELDS + d + e < message.length;
}

/** The offset, read digit by digit (no string is made). Call after hasPosition. */
export function readOffset(message: Buffer): number {
  const end = FIELDS + message[DIGITS]!;
  let n = 0;
  for (let i = FIELDS; i < end; i++) n = n * 10 + (message[i]! - ZERO);
  return n;
}

/** The epoch: one short string per message per gateway. Call after hasPosition. */
export function readEpoch(message: Buffer): string {
  const start = FIELDS + message[DIGITS]!;
  return message.toString('latin1', start, start + message[EPOCH_LENGTH]!);
}

/** The client bytes after the header: a view on the same memory. Call after hasPosition. */
export function positionPayload(message: Buffer): Buffer {
  return message.subarray(FIELDS + message[DIGITS]! + message[EPOCH_LENGTH]!);
}

/** A positioned bus message as the receiver hands it on: its position and a view of its client bytes. Call after hasPosition. */
export function readPositioned(message: Buffer): PositionedMessage {
  return { offset: readOffset(message), epoch: readEpoch(message), bytes: positionPayload(message) };
}

/** The client frame without its closing brace: what the publisher hands to the publish script. */
export function messageHead(clientMessage: Buffer): Buffer {
  if (clientMessage[clientMessage.length - 1] !== CLOSE_BRACE) throw new Error('a client message ends with }');
  return clientMessage.subarray(0, clientMessage.length - 1);
}

/** The tail the script appends to the head; mirrored here for the in-process history. */
export function positionTail(offset: number, epoch: string): string {
  return `,"offset":${offset},"epoch":"${epoch}"}`;
}

/** The client bytes of a message at this position: head + tail. */
export function positionedMessage(head: Buffer, offset: number, epoch: string): Buffer {
  const tail = positionTail(offset, epoch);
  const out = Buffer.allocUnsafe(head.length + tail.length);
  head.copy(out, 0);
  out.write(tail, head.length, 'latin1');
  return out;
}

/** What the publish script puts on pub/sub: header + client bytes (JS twin of the Lua, for tests and tools). */
export function writePositioned(clientBytes: Buffer, offset: number, epoch: string): Buffer {
  const digits = String(offset);
  if (digits.length > MAX_OFFSET_DIGITS || !isValidEpoch(epoch)) throw new Error('offset or epoch out of range');
  const header = FIELDS + digits.length + epoch.length;
  const out = Buffer.allocUnsafe(header + clientBytes.length);
  out[0] = POSITION_MAGIC;
  out[1] = VERSION;
  out[DIGITS] = digits.length;
  out[EPOCH_LENGTH] = epoch.length;
  out.write(digits, FIELDS, 'latin1');
  out.write(epoch, FIELDS + digits.length, 'latin1');
  clientBytes.copy(out, header);
  return out;
}

/**
 * The data of stored client bytes, as a view (GET /history answers {"offset":N,"data":ANY}
 * without re-encoding): between `{"op":"message","channel":"C","data":` and the position tail.
 */
export function messageData(clientBytes: Buffer, channel: string, offset: number, epoch: string): Buffer {
  const start = '{"op":"message","channel":"'.length + channel.length + '","data":'.length;
  return clientBytes.subarray(start, clientBytes.length - positionTail(offset, epoch).length);
}

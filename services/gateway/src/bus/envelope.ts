// The bus envelope: 20 bytes prefixed to every payload a gateway publishes on Redis, so a
// receiving gateway can tell which gateway process sent it and spot missing or repeated messages.
//
//   offset  bytes  field
//   0       1      magic 0xFE (never the first byte of UTF-8 JSON text)
//   1       1      version 1
//   2       6      origin: random id of the publishing gateway process, big-endian
//   8       6      stream: which sequence of that origin on this channel (see sequence.ts)
//   14      6      seq: 1, 2, 3 ... within the stream
//   20      ...    the payload: the exact bytes clients receive
//
// 48-bit fields read as plain numbers (no BigInt) and do not wrap in the life of a process.

export const ENVELOPE_BYTES = 20;
const MAGIC = 0xfe;
const VERSION = 1;
const ORIGIN = 2;
const STREAM = 8;
const SEQ = 14;
const FIELD = 6;

/** Writes the envelope into the first ENVELOPE_BYTES of out. */
export function writeEnvelope(out: Buffer, origin: number, stream: number, seq: number): void {
  out[0] = MAGIC;
  out[1] = VERSION;
  out.writeUIntBE(origin, ORIGIN, FIELD);
  out.writeUIntBE(stream, STREAM, FIELD);
  out.writeUIntBE(seq, SEQ, FIELD);
}

/** True when the message starts with an envelope this version understands. */
export function hasEnvelope(message: Buffer): boolean {
  return message.length >= ENVELOPE_BYTES && message[0] === MAGIC && message[1] === VERSION;
}

export const readOrigin = (message: Buffer): number => message.readUIntBE(ORIGIN, FIELD);
export const readStream = (message: Buffer): number => message.readUIntBE(STREAM, FIELD);
export const readSeq = (message: Buffer): number => message.readUIntBE(SEQ, FIELD);

/** The payload after the envelope: a view on the same memory, so the hub frames it without a copy. */
export function envelopePayload(message: Buffer): Buffer {
  return message.subarray(ENVELOPE_BYTES);
}

/** A process's origin id: 48 random bits (a collision among a cluster's processes is ~n²/2^49). */
export function randomOrigin(bytes: Buffer): number {
  return bytes.readUIntBE(0, FIELD);
}

export function originHex(origin: number): string {
  return origin.toString(16).padStart(FIELD * 2, '0');
}

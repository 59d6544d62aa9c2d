// Frames a message once per gateway so the same bytes can be written to every subscriber's socket.
import * as ws from 'ws';

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}

// ws exports its Sender (a named export of its ESM wrapper) but @types/ws does not describe it.
const { Sender } = ws as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } };

const PONG_FRAME: FrameOptions = { fin: true, opcode: 0xa, mask: false, readOnly: false, rsv1: false };

/** FIN and the text opcode: the first byte of every frame built here. */
const FIN_TEXT = 0x81;
const LENGTH_16 = 126;
const LENGTH_64 = 127;

/**
 * One unmasked, final text frame (server-to-client frames are never masked), as a single buffer:
 * the header (RFC 6455 5.2) written straight in front of the payload. Sender.frame would give a
 * header buffer and the payload apart, and joining them cost a second allocation and a concat on
 * every bus message.
 */
export function textFrame(payload: Buffer): Buffer {
  const n = payload.length;
  const header = n < LENGTH_16 ? 2 : n < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + n);
  frame[0] = FIN_TEXT;
  if (n < LENGTH_16) {
    frame[1] = n;
  } else if (n < 0x10000) {
    frame[1] = LENGTH_16;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = LENGTH_64;
    frame.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    frame.writeUInt32BE(n >>> 0, 6);
  }
  payload.copy(frame, header);
  return frame;
}

/** A pong answering a client's ping; it goes through the client's bounded queue like any frame. */
export function pongFrame(payload: Buffer): Buffer {
  return Buffer.concat(Sender.frame(payload, PONG_FRAME));
}

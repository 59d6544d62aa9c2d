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

const TEXT_FRAME: FrameOptions = { fin: true, opcode: 0x1, mask: false, readOnly: false, rsv1: false };
const PONG_FRAME: FrameOptions = { fin: true, opcode: 0xa, mask: false, readOnly: false, rsv1: false };

/** One unmasked, final text frame (server-to-client frames are never masked), as a single buffer. */
export function textFrame(payload: Buffer): Buffer {
  const parts = Sender.frame(payload, TEXT_FRAME);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** A pong answering a client's ping; it goes through the client's bounded queue like any frame. */
export function pongFrame(payload: Buffer): Buffer {
  return Buffer.concat(Sender.frame(payload, PONG_FRAME));
}

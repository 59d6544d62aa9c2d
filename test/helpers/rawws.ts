// A raw WebSocket client over TCP: it completes the handshake by hand, then writes any bytes
// (bad opcodes, unmasked or fragmented frames, invalid UTF-8) and parses what the server sends.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { within } from './wait.js';

export interface RawOutcome {
  /** The code of the server's close frame, or null if it closed (or is still open) without one. */
  readonly closeCode: number | null;
  /** Text frames from the server, parsed as JSON. */
  readonly texts: Record<string, unknown>[];
  readonly pongs: number;
  /** False when the socket was still open at the deadline. */
  readonly closed: boolean;
}

const MASK = Buffer.from([0x12, 0x34, 0x56, 0x78]);

/** One client-to-server frame; masked unless told otherwise, as RFC 6455 requires of clients. */
export function frame(opcode: number, payload: Buffer, opts: { fin?: boolean; mask?: boolean; rsv?: number } = {}): Buffer {
  const fin = opts.fin ?? true;
  const mask = opts.mask ?? true;
  const head = [(fin ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode];
  const len = payload.length;
  let ext = Buffer.alloc(0);
  if (len < 126) head.push((mask ? 0x80 : 0) | len);
  else if (len < 65536) {
    head.push((mask ? 0x80 : 0) | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(len);
  } else {
    head.push((mask ? 0x80 : 0) | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(BigInt(len));
  }
  const body = mask ? Buffer.from(payload.map((b, i) => b ^ MASK[i % 4]!)) : payload;
  return Buffer.concat([Buffer.from(head), ext, mask ? MASK : Buffer.alloc(0), body]);
}

export const text = (value: string | Buffer): Buffer => frame(0x1, typeof value === 'string' ? Buffer.from(value) : value);

export class RawSocket {
  private buffer = Buffer.alloc(0);
  private closeCode: number | null = null;
  private readonly texts: Record<string, unknown>[] = [];
  private pongs = 0;
  private readonly ended: Promise<unknown>;
  private wake: (() => void) | null = null;

  private constructor(private readonly socket: Socket) {
    this.ended = once(socket, 'close');
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.parse();
      this.wake?.();
    });
  }

  static async open(port: number, path = '/ws'): Promise<RawSocket> {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await within(once(socket, 'connect'), 5000, 'TCP connect');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    let head = Buffer.alloc(0);
    await within(
      new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer): void => {
          head = Buffer.concat([head, chunk]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          socket.off('data', onData);
          const status = head.subarray(0, head.indexOf('\r\n')).toString();
          if (!status.includes(' 101 ')) return reject(new Error(`handshake refused: ${status}`));
          const rest = head.subarray(end + 4);
          if (rest.length > 0) socket.unshift(rest);
          resolve();
        };
        socket.on('data', onData);
      }),
      5000,
      'the 101',
    );
    return new RawSocket(socket);
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Waits until the server closes, `until` is satisfied, or the deadline; then reports. */
  async outcome(timeoutMs: number, until?: (o: RawOutcome) => boolean): Promise<RawOutcome> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const current = this.snapshot();
      if (current.closed || (until !== undefined && until(current)) || Date.now() >= deadline) return current;
      await Promise.race([
        this.ended,
        new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, Math.max(1, deadline - Date.now()));
        }),
      ]);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private snapshot(): RawOutcome {
    return { closeCode: this.closeCode, texts: [...this.texts], pongs: this.pongs, closed: this.socket.destroyed || this.socket.readableEnded };
  }

  /** Server frames are unmasked and, from hubcast, never fragmented. */
  private parse(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const opcode = b[0]! & 0x0f;
      let len = b[1]! & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + len) return;
      const payload = b.subarray(offset, offset + len);
      this.buffer = b.subarray(offset + len);
      if (opcode === 0x1) this.texts.push(JSON.parse(payload.toString('utf8')) as Record<string, unknown>);
      else if (opcode === 0x8) this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      else if (opcode === 0xa) this.pongs++;
    }
  }
}

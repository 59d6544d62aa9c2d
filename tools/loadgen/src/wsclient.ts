// A minimal WebSocket client for the subscriber side of the benchmark: the HTTP upgrade, then
// server frames parsed in place from each TCP chunk and handed over as (chunk, start, end) with no
// copy and no event per message. On a 2-core machine the load processes share the cores with the
// servers; a full client library (a stream and an event per frame) costs several times more per
// message and would measure itself instead of the servers. Servers send small unfragmented
// frames; anything this client does not expect ends the connection.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { PORT_ATTEMPTS, type SourcePorts } from './source-ports.js';

export interface FrameSink {
  /** A text or binary frame's payload is chunk[start, end). */
  onMessage(chunk: Buffer, start: number, end: number): void;
  onOpen(): void;
  onClose(reason: string): void;
}

const OP_CLOSE = 0x8;
const OP_PING = 0x9;

export class MiniWebSocket {
  private socket!: Socket;
  private upgraded = false;
  private pending: Buffer | null = null;
  private ended = false;
  private readonly url: URL;

  /** source: a local address (the kernel picks the port), or the process's own ports on its address. */
  constructor(url: string, private readonly source: string | SourcePorts, private readonly sink: FrameSink) {
    this.url = new URL(url);
    this.dial(PORT_ATTEMPTS);
  }

  private dial(attemptsLeft: number): void {
    const u = this.url;
    const source = this.source;
    const socket =
      typeof source === 'string'
        ? connect({ host: u.hostname, port: Number(u.port), localAddress: source })
        : connect({ host: u.hostname, port: Number(u.port), localAddress: source.address, localPort: source.next() });
    this.socket = socket;
    socket.setNoDelay(true);
    let connected = false;
    socket.on('connect', () => {
      connected = true;
      const key = randomBytes(16).toString('base64');
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error & { code?: string }) => {
      // The chosen port is still held (an earlier run's TIME_WAIT): the next one.
      if (!connected && !this.ended && err.code === 'EADDRINUSE' && typeof source !== 'string' && attemptsLeft > 1) {
        socket.removeAllListeners('close');
        socket.destroy();
        this.dial(attemptsLeft - 1);
        return;
      }
      this.end(err.message);
    });
    socket.on('close', () => this.end('socket closed'));
  }

  get open(): boolean {
    return this.upgraded && !this.ended;
  }

  /** Sends a short text frame (client frames must be masked; a zero mask leaves the bytes as they are). */
  send(text: string): void {
    this.sendFrame(0x1, Buffer.from(text));
  }

  close(): void {
    this.ended = true;
    this.socket.destroy();
  }

  private sendFrame(opcode: number, payload: Buffer): void {
    if (payload.length > 125) throw new Error('control-sized frames only');
    const frame = Buffer.alloc(6 + payload.length);
    frame[0] = 0x80 | opcode;
    frame[1] = 0x80 | payload.length;
    payload.copy(frame, 6);
    this.socket.write(frame);
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.destroy();
    this.sink.onClose(reason);
  }

  private onData(data: Buffer): void {
    const chunk = this.pending === null ? data : Buffer.concat([this.pending, data]);
    this.pending = null;
    let i = 0;
    if (!this.upgraded) {
      const headEnd = chunk.indexOf('\r\n\r\n');
      if (headEnd < 0) {
        this.pending = chunk;
        return;
      }
      const status = chunk.toString('latin1', 0, chunk.indexOf('\r\n'));
      if (!status.startsWith('HTTP/1.1 101')) {
        this.end(`upgrade refused: ${status}`);
        return;
      }
      this.upgraded = true;
      this.sink.onOpen();
      i = headEnd + 4;
    }
    while (i < chunk.length) {
      if (chunk.length - i < 2) break;
      const opcode = chunk[i]! & 0x0f;
      let length = chunk[i + 1]! & 0x7f;
      let header = 2;
      if (length === 126) {
        if (chunk.length - i < 4) break;
        length = chunk.readUInt16BE(i + 2);
        header = 4;
      } else if (length === 127) {
        if (chunk.length - i < 10) break;
        length = chunk.readUInt32BE(i + 6);
        header = 10;
      }
      const start = i + header;
      const end = start + length;
      if (end > chunk.length) break;
      if (opcode === OP_CLOSE) {
        this.end('close frame');
        return;
      }
      if (opcode === OP_PING) this.sendFrame(0xa, chunk.subarray(start, end));
      else if (opcode === 0x1 || opcode === 0x2) this.sink.onMessage(chunk, start, end);
      i = end;
    }
    if (i < chunk.length) this.pending = chunk.subarray(i);
  }
}

// A WebSocket test client that records every frame and lets a test await the ones it expects.
import { once } from 'node:events';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { within } from './wait.js';

export interface ServerFrame {
  readonly op: string;
  readonly channel?: string;
  readonly data?: unknown;
  readonly code?: string;
  readonly message?: string;
  readonly id?: string | number;
  /** Positions (history on): on messages, subscribe acks and lost frames. */
  readonly offset?: number;
  readonly epoch?: string;
  readonly recovered?: boolean;
}

export interface Closed {
  readonly code: number;
  readonly reason: string;
}

export class TestClient {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<Closed>;
  private waiters: (() => void)[] = [];
  private nextId = 1;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.frames.push(JSON.parse(data.toString('utf8')) as ServerFrame);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        resolve({ code, reason: reason.toString('utf8') });
        this.wake();
      });
    });
    ws.on('error', () => undefined);
  }

  static async connect(url: string, timeoutMs = 10_000, options?: WebSocket.ClientOptions): Promise<TestClient> {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    await within(
      Promise.race([
        once(ws, 'open'),
        once(ws, 'unexpected-response').then(([, res]) => {
          throw new Error(`upgrade refused with HTTP ${(res as { statusCode: number }).statusCode}`);
        }),
      ]),
      timeoutMs,
      `WebSocket open at ${url}`,
    );
    return client;
  }

  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  send(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  /** Sends a command with a fresh id and waits for its ack (or error). */
  async request(command: Record<string, unknown>, timeoutMs = 10_000): Promise<ServerFrame> {
    const id = this.nextId++;
    this.send({ ...command, id });
    return this.waitFor((f) => f.id === id && (f.op === 'ack' || f.op === 'error'), timeoutMs, `reply to ${JSON.stringify(command)}`);
  }

  messages(channel?: string): ServerFrame[] {
    return this.frames.filter((f) => f.op === 'message' && (channel === undefined || f.channel === channel));
  }

  /** Resolves with the first frame (past or future) that matches. */
  waitFor(match: (frame: ServerFrame) => boolean, timeoutMs = 10_000, what = 'a matching frame'): Promise<ServerFrame> {
    return this.until(() => this.frames.find(match), timeoutMs, what);
  }

  /** Resolves once count() reaches n. */
  async waitForCount(count: () => number, n: number, timeoutMs = 10_000, what = `${n} frames`): Promise<void> {
    await this.until(() => (count() >= n ? true : undefined), timeoutMs, what);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }

  private until<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const found = probe();
    if (found !== undefined) return Promise.resolve(found);
    return within(
      new Promise<T>((resolve, reject) => {
        const check = (): void => {
          const value = probe();
          if (value !== undefined) return resolve(value);
          if (this.ws.readyState === WebSocket.CLOSED) return reject(new Error(`connection closed while waiting for ${what}`));
          this.waiters.push(check);
        };
        this.waiters.push(check);
      }),
      timeoutMs,
      what,
    );
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** The HTTP refusal of an upgrade the gateway turns down: its status, JSON body and headers. */
export async function upgradeRefusal(
  url: string,
  options?: WebSocket.ClientOptions,
  timeoutMs = 10_000,
): Promise<{ status: number; code: string; headers: Record<string, string | string[] | undefined> }> {
  const ws = new WebSocket(url, options);
  ws.on('error', () => undefined);
  try {
    const [, res] = (await within(
      Promise.race([
        once(ws, 'unexpected-response'),
        once(ws, 'open').then(() => {
          throw new Error(`upgrade to ${url} was accepted`);
        }),
      ]),
      timeoutMs,
      `the refusal of ${url}`,
    )) as [unknown, import('node:http').IncomingMessage];
    let body = '';
    res.setEncoding('utf8');
    for await (const chunk of res) body += chunk as string;
    return { status: res.statusCode ?? 0, code: (JSON.parse(body) as { code: string }).code, headers: res.headers };
  } finally {
    ws.terminate();
  }
}

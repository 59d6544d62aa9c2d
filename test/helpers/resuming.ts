// A client that resumes, as an application on the SDK would: after every disconnect it connects
// again to the same URL (a load balancer), retrying while it is refused, and resubscribes each
// channel with `since`, the last position it holds. It keeps every frame of every connection, so a
// test can check a channel's sequence end to end; it never deduplicates, so a duplicate shows.
import WebSocket from 'ws';
import type { Position, PositionedFrame } from './positions.js';
import { within } from './wait.js';

export interface ResumedAck {
  readonly channel: string;
  /** The position sent as since (undefined on the first subscribe). */
  readonly since: Position | undefined;
  readonly ack: PositionedFrame;
}

const RETRY_MS = 50;

export class ResumingClient {
  /** Every message per channel, over every connection, in arrival order. */
  readonly messages = new Map<string, (PositionedFrame & Position)[]>();
  readonly acks: ResumedAck[] = [];
  readonly losts: PositionedFrame[] = [];
  /** Error frames: none is expected. */
  readonly errors: PositionedFrame[] = [];
  /** Close codes of the connections that ended. */
  readonly closes: number[] = [];
  /** Connect attempts refused or failed before one opened. */
  refusedAttempts = 0;
  /** One line per event (connection number, what happened), for a failing test to show. */
  readonly trace: string[] = [];
  private connection = 0;
  private readonly positions = new Map<string, Position>();
  private readonly pending = new Map<number, { channel: string; since: Position | undefined }>();
  private ws: WebSocket | null = null;
  private stopped = false;
  private nextId = 1;
  private subscribed = 0;
  private waiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    private readonly url: string,
    readonly channels: readonly string[],
  ) {
    for (const c of channels) this.messages.set(c, []);
  }

  /** Connects and subscribes every channel; resolves once each is acked. */
  async start(timeoutMs = 15_000): Promise<void> {
    void this.connect();
    await this.ready(timeoutMs);
  }

  /** The position of the first ack on a channel: where its sequence starts. */
  firstAck(channel: string): Position {
    const first = this.acks.find((a) => a.channel === channel && a.since === undefined)?.ack;
    if (first?.offset === undefined || first.epoch === undefined) throw new Error(`${this.name}: no first ack on ${channel}`);
    return { offset: first.offset, epoch: first.epoch };
  }

  /** Resolves once the current connection has every channel acked. */
  ready(timeoutMs = 15_000): Promise<void> {
    return this.until(() => this.ws?.readyState === WebSocket.OPEN && this.subscribed === this.channels.length, timeoutMs, `${this.name} to be subscribed`);
  }

  /** Resolves once check() holds, re-checked on every frame and connection change. */
  until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const wait = async (): Promise<void> => {
      while (!check()) await new Promise<void>((resolve) => this.waiters.push(resolve));
    };
    return within(wait(), timeoutMs, what);
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }

  private async connect(): Promise<void> {
    while (!this.stopped) {
      const ws = new WebSocket(this.url);
      ws.on('error', () => undefined);
      const opened = await new Promise<boolean>((resolve) => {
        ws.once('open', () => resolve(true));
        // Refused (503 from a draining gateway, or from HAProxy with no server up): try again.
        ws.once('unexpected-response', (_req, res) => {
          res.resume();
          resolve(false);
        });
        ws.once('close', () => resolve(false));
      });
      if (opened && !this.stopped) {
        this.attach(ws);
        return;
      }
      ws.terminate();
      this.refusedAttempts++;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  private attach(ws: WebSocket): void {
    this.ws = ws;
    this.subscribed = 0;
    const connection = ++this.connection;
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as PositionedFrame;
      const channel = f.channel ?? (typeof f.id === 'number' ? this.pending.get(f.id)?.channel : undefined) ?? '';
      this.trace.push(`#${connection} ${f.op} ${channel} offset=${f.offset ?? ''} epoch=${f.epoch ?? ''} id=${f.id ?? ''} recovered=${f.recovered ?? ''}`);
      this.frame(f);
    });
    ws.on('close', (code: number) => {
      this.trace.push(`#${connection} close ${code}`);
      this.closes.push(code);
      this.pending.clear();
      this.subscribed = 0;
      this.wake();
      if (!this.stopped) void this.connect();
    });
    for (const channel of this.channels) {
      const id = this.nextId++;
      const since = this.positions.get(channel);
      this.pending.set(id, { channel, since });
      this.trace.push(`#${connection} subscribe ${channel} id=${id} since=${since === undefined ? '' : `${since.offset}/${since.epoch}`}`);
      ws.send(JSON.stringify(since === undefined ? { op: 'subscribe', channel, id } : { op: 'subscribe', channel, id, since }));
    }
    this.wake();
  }

  private frame(f: PositionedFrame): void {
    if (f.op === 'message' && f.channel !== undefined && f.offset !== undefined && f.epoch !== undefined) {
      this.messages.get(f.channel)?.push(f as PositionedFrame & Position);
      this.positions.set(f.channel, { offset: f.offset, epoch: f.epoch });
    } else if (f.op === 'ack' && typeof f.id === 'number' && this.pending.has(f.id)) {
      const { channel, since } = this.pending.get(f.id)!;
      this.pending.delete(f.id);
      this.acks.push({ channel, since, ack: f });
      this.subscribed++;
      // Recovered: the missed messages follow and move the position. Otherwise the ack's position
      // is where this client's state would be reloaded from.
      if (f.recovered !== true && f.offset !== undefined && f.epoch !== undefined) this.positions.set(channel, { offset: f.offset, epoch: f.epoch });
    } else if (f.op === 'lost' && f.channel !== undefined && f.offset !== undefined && f.epoch !== undefined) {
      this.losts.push(f);
      this.positions.set(f.channel, { offset: f.offset, epoch: f.epoch });
    } else if (f.op === 'error') {
      this.errors.push(f);
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

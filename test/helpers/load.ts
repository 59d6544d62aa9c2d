// Steady publish load for the fault suite: one WebSocket publisher that numbers its messages and
// records the gateway's answer to each one (acked, refused unsent, sent but unconfirmed, or no
// answer because the connection died).
import { once } from 'node:events';
import WebSocket from 'ws';
import { within } from './wait.js';

/** What the publisher knows about one message. */
export type Fate = 'accepted' | 'not_sent' | 'unconfirmed' | 'no_reply';

export interface Sent {
  readonly key: string;
  readonly channel: string;
  fate: Fate | null;
}


export class LoadPublisher {
  readonly sent = new Map<number, Sent>();
  private next = 1;
  private timer: NodeJS.Timeout | null = null;
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly ws: WebSocket,
  ) {
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as { op: string; id?: number; code?: string };
      const sent = frame.id === undefined ? undefined : this.sent.get(frame.id);
      if (sent === undefined || sent.fate !== null) return;
      if (frame.op === 'ack') sent.fate = 'accepted';
      else if (frame.op === 'error') sent.fate = frame.code === 'bus_unconfirmed' ? 'unconfirmed' : 'not_sent';
      this.wake();
    });
    ws.on('close', () => {
      this.closed = true;
      this.stop();
      for (const s of this.sent.values()) if (s.fate === null) s.fate = 'no_reply';
      this.wake();
    });
    ws.on('error', () => undefined);
  }

  static async connect(name: string, url: string): Promise<LoadPublisher> {
    const ws = new WebSocket(url);
    await within(once(ws, 'open'), 10_000, `publisher ${name} to connect`);
    return new LoadPublisher(name, ws);
  }

  /** Publishes one message; its data is {p: name, n: id}, so receivers can name it. */
  publish(channel: string): Sent | null {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return null;
    const id = this.next++;
    const sent: Sent = { key: `${this.name}:${id}`, channel, fate: null };
    this.sent.set(id, sent);
    this.ws.send(JSON.stringify({ op: 'publish', channel, id, data: { p: this.name, n: id } }));
    return sent;
  }

  /** Publishes every intervalMs, cycling through the channels, until stop(). */
  start(channels: readonly string[], intervalMs: number): void {
    let i = 0;
    this.timer = setInterval(() => this.publish(channels[i++ % channels.length]!), intervalMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Resolves when every message sent so far has its fate. */
  settled(timeoutMs = 15_000): Promise<void> {
    const done = (): boolean => [...this.sent.values()].every((s) => s.fate !== null);
    return within(
      new Promise<void>((resolve) => {
        const check = (): void => (done() ? resolve() : void this.waiters.push(check));
        check();
      }),
      timeoutMs,
      `every publish of ${this.name} to be answered`,
    );
  }

  /** Publishes one message and waits for its fate. */
  async publishAndWait(channel: string): Promise<Sent> {
    const sent = this.publish(channel);
    if (sent === null) throw new Error(`publisher ${this.name} is closed`);
    await this.settled();
    return sent;
  }

  count(fate: Fate): number {
    let n = 0;
    for (const s of this.sent.values()) if (s.fate === fate) n++;
    return n;
  }

  close(): void {
    this.stop();
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

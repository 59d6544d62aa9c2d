// The hub owns the local clients and the channel map: register, unregister, subscribe,
// and broadcast. It asks the bus for a channel when its first local client (or pin) arrives
// and gives it back when the last one leaves. It never waits on a client.
import type { Logger } from 'pino';
import type { Bus } from './bus/bus.js';
import type { Client, ClientOwner } from './client.js';
import { CloseCode, CloseReason, EvictReason } from './codes.js';
import { textFrame } from './frame.js';
import type { Stats } from './stats.js';

interface ChannelEntry {
  readonly subscribers: Set<Client>;
  /** Holds on a channel by upgrades still waiting for it to go live. */
  pins: number;
}

export type SubscribeResult = 'subscribed' | 'already' | 'limit';

export interface HubOptions {
  readonly maxChannelsPerClient: number;
  readonly log?: Logger;
  /** Observes the time one bus message took to reach every local subscriber. */
  readonly observeFanout?: (seconds: number) => void;
}

export class Hub implements ClientOwner {
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly clients = new Set<Client>();
  private subscriptions = 0;
  private emptyWaiters: (() => void)[] = [];
  /** Clients with frames queued this turn, flushed once by one setImmediate; two arrays swapped, so no allocation per turn. */
  private dirty: Client[] = [];
  private spare: Client[] = [];
  private flushPending = false;

  constructor(
    private readonly bus: Bus,
    private readonly stats: Stats,
    private readonly options: HubOptions,
  ) {}

  get clientCount(): number {
    return this.clients.size;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  get subscriptionCount(): number {
    return this.subscriptions;
  }

  register(client: Client): void {
    this.clients.add(client);
    this.stats.connectionsOpened++;
    this.stats.connectionsOpen = this.clients.size;
  }

  /** Called when the connection has closed: the client leaves every channel and is released. */
  unregister(client: Client): void {
    this.detach(client);
    client.dispose();
    if (!this.clients.delete(client)) return;
    this.stats.connectionsOpen = this.clients.size;
    if (this.clients.size === 0) {
      const waiters = this.emptyWaiters;
      this.emptyWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  subscribe(client: Client, channel: string): SubscribeResult {
    if (client.channels.has(channel)) return 'already';
    if (client.channels.size >= this.options.maxChannelsPerClient) return 'limit';
    this.entry(channel).subscribers.add(client);
    client.channels.add(channel);
    this.subscriptions++;
    return 'subscribed';
  }

  unsubscribe(client: Client, channel: string): boolean {
    if (!client.channels.delete(channel)) return false;
    const entry = this.channels.get(channel);
    if (entry !== undefined) {
      entry.subscribers.delete(client);
      this.release(channel, entry);
    }
    this.subscriptions--;
    return true;
  }

  /** Resolves once the bus delivers this channel to this gateway. */
  whenLive(channel: string): Promise<void> {
    return this.bus.whenLive(channel);
  }

  /** Holds channels open on the bus before any client subscribes (an upgrade awaiting them). */
  pin(channels: readonly string[]): void {
    for (const channel of channels) this.entry(channel).pins++;
  }

  unpin(channels: readonly string[]): void {
    for (const channel of channels) {
      const entry = this.channels.get(channel);
      if (entry === undefined || entry.pins === 0) continue;
      entry.pins--;
      this.release(channel, entry);
    }
  }

  /** Fans one bus message out to this gateway's subscribers: framed once, written to each. */
  broadcast(channel: string, payload: Buffer): void {
    this.stats.busMessages++;
    const entry = this.channels.get(channel);
    if (entry === undefined || entry.subscribers.size === 0) return;
    const started = performance.now();
    const frame = textFrame(payload);
    for (const client of entry.subscribers) client.deliver(frame);
    this.options.observeFanout?.((performance.now() - started) / 1000);
  }

  /** Part of ClientOwner: the client's frames of this turn go out in one write once the turn's I/O is done. */
  scheduleFlush(client: Client): void {
    this.dirty.push(client);
    if (this.flushPending) return;
    this.flushPending = true;
    setImmediate(this.flushDirty);
  }

  private readonly flushDirty = (): void => {
    this.flushPending = false;
    const batch = this.dirty;
    this.dirty = this.spare;
    for (let i = 0; i < batch.length; i++) {
      const client = batch[i]!;
      client.scheduled = false;
      try {
        client.flush();
      } catch (err) {
        // A fault writing to one socket must not take the process (and every other client) down.
        this.options.log?.error({ client: client.id, err: (err as Error).message }, 'flush failed');
        client.ws.terminate();
      }
    }
    batch.length = 0;
    this.spare = batch;
  };

  /** The client stays behind or overflowed: take it out of every channel now, then close it. */
  evict(client: Client, reason: EvictReason): void {
    if (client.isClosing) return;
    this.stats.evicted[reason]++;
    this.options.log?.info({ client: client.id, reason, queued: client.queuedFrames }, 'client evicted');
    this.detach(client);
    client.evict(reason);
  }

  /** Closes a client whose handling failed unexpectedly (1011), keeping everyone else served. */
  evictForError(client: Client): void {
    this.disconnect(client, CloseCode.InternalError, CloseReason.InternalError);
  }

  /** Takes the client out of every channel now and closes it with this code (policy closes). */
  disconnect(client: Client, code: number, reason: string): void {
    if (client.isClosing) return;
    this.detach(client);
    client.close(code, reason);
  }

  /** Pings every client; one that has not answered the previous ping is terminated. */
  heartbeat(): void {
    for (const client of this.clients) {
      if (client.isClosing) continue;
      if (!client.alive) {
        this.evict(client, EvictReason.HeartbeatTimeout);
        continue;
      }
      client.alive = false;
      client.ws.ping();
      client.trim();
    }
  }

  /** Closes every client (shutdown). Resolves when all have gone. */
  closeAll(code: number, reason: string): Promise<void> {
    for (const client of this.clients) {
      this.detach(client);
      client.close(code, reason);
    }
    if (this.clients.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  private entry(channel: string): ChannelEntry {
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      entry = { subscribers: new Set(), pins: 0 };
      this.channels.set(channel, entry);
      this.bus.subscribe(channel);
    }
    return entry;
  }

  private release(channel: string, entry: ChannelEntry): void {
    if (entry.subscribers.size > 0 || entry.pins > 0) return;
    this.channels.delete(channel);
    this.bus.unsubscribe(channel);
  }

  private detach(client: Client): void {
    for (const channel of client.channels) {
      const entry = this.channels.get(channel);
      if (entry === undefined) continue;
      entry.subscribers.delete(client);
      this.release(channel, entry);
    }
    this.subscriptions -= client.channels.size;
    client.channels.clear();
  }
}

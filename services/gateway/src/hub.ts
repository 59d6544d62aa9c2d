// The hub owns the local clients and the channel map: register, unregister, subscribe,
// broadcast, and every server-side close (a Disconnect entry). It asks the bus for a channel when
// its first local client (or pin) arrives and gives it back when the last one leaves. It never
// waits on a client, and knows a client only through HubClient; flush.ts batches their writes.
//
// A subscribe with `since` joins its channel as recovering (recovery.ts): while its history read
// runs, the channel's live messages go to its ChannelRecovery instead of its queue, and
// resolveRecovery() moves it to the subscribers in the turn its ack and replay are sent. The
// other subscribers' delivery is untouched: they are a separate set. The read's reply and the
// live messages travel on different Redis connections, so live copies of what the replay sent may
// still come after it: until the first message past its seam, such a client is sent none of them.
import type { Logger } from 'pino';
import type { Bus } from './bus/bus.js';
import type { HistoryRead } from './bus/history-read.js';
import type { Position } from './bus/position.js';
import { Disconnect } from './codes.js';
import { FlushScheduler, type Flushable } from './flush.js';
import { textFrame } from './frame.js';
import { Slices } from './heartbeat.js';
import { encodeLost } from './protocol.js';
import type { ChannelRecovery, RecoveryResult } from './recovery.js';
import type { Stats } from './stats.js';

/** What the hub asks of a client; client.ts implements it, the hub's unit tests fake it. */
export interface HubClient extends Flushable {
  readonly id: number;
  /** Closing or closed: the hub neither counts nor closes it again. */
  readonly isClosing: boolean;
  /** Frames waiting in its send queue (logged at eviction). */
  readonly queuedFrames: number;
  /** Hands it one pre-framed message; never blocks, never throws. */
  deliver(frame: Buffer): void;
  /** Ends the connection as the entry says: a close frame, or a terminate. */
  close(disconnect: Disconnect): void;
  /** Pings the peer; false when it never answered the previous ping (it is dead, and not pinged). */
  heartbeat(): boolean;
  /** The connection has closed: release what it holds. */
  dispose(): void;
}

interface ChannelEntry {
  readonly subscribers: Set<HubClient>;
  /** Holds on a channel by upgrades still waiting for it to go live. */
  pins: number;
  /** Subscribers whose history read runs: their live messages wait in their recovery. Null while none. */
  recovering: Map<HubClient, ChannelRecovery> | null;
  /** Recovered subscribers and the last position they were sent: older live copies are skipped for them. Null while none. */
  seams: Map<HubClient, Position> | null;
}

export type SubscribeResult = 'subscribed' | 'already' | 'limit';

export interface HubOptions {
  readonly maxChannelsPerClient: number;
  readonly log?: Logger;
  /** Observes the time one bus message took to reach every local subscriber. */
  readonly observeFanout?: (seconds: number) => void;
  /** heartbeat() visits one of this many slices of the clients per call (heartbeat.ts); 1 (default): all of them. */
  readonly heartbeatSlices?: number;
}

export class Hub {
  private readonly channels = new Map<string, ChannelEntry>();
  /** Every registered client and the channels it holds (kept here, so only the hub writes them). */
  private readonly clients = new Map<HubClient, Set<string>>();
  private subscriptions = 0;
  private emptyWaiters: (() => void)[] = [];
  private readonly flusher: FlushScheduler<HubClient>;
  /** The registered clients again, split for the heartbeat's rounds. */
  private readonly heartbeats: Slices<HubClient>;

  constructor(
    private readonly bus: Bus,
    private readonly stats: Stats,
    private readonly options: HubOptions,
  ) {
    this.flusher = new FlushScheduler((client, err) => {
      options.log?.error({ client: client.id, err }, 'flush failed');
      this.disconnect(client, Disconnect.WriteError);
    });
    this.heartbeats = new Slices(options.heartbeatSlices ?? 1);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  get subscriptionCount(): number {
    return this.subscriptions;
  }

  register(client: HubClient): void {
    this.clients.set(client, new Set());
    this.heartbeats.add(client);
    this.stats.connectionsOpened++;
    this.stats.connectionsOpen = this.clients.size;
  }

  /** Called when the connection has closed: the client leaves every channel and is released. */
  unregister(client: HubClient): void {
    this.detach(client);
    client.dispose();
    this.heartbeats.delete(client);
    if (!this.clients.delete(client)) return;
    this.stats.connectionsOpen = this.clients.size;
    if (this.clients.size === 0) {
      const waiters = this.emptyWaiters;
      this.emptyWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** The channels this client holds (a live view, not a copy). */
  channelsOf(client: HubClient): ReadonlySet<string> {
    return this.clients.get(client) ?? NONE;
  }

  /**
   * Joins the channel. With a recovery the client joins as recovering: live messages of the
   * channel go to the recovery until resolveRecovery() (or it leaves the channel).
   */
  subscribe(client: HubClient, channel: string, recovery?: ChannelRecovery): SubscribeResult {
    const joined = this.clients.get(client);
    if (joined === undefined) throw new Error(`client ${client.id} is not registered`);
    if (joined.has(channel)) return 'already';
    if (joined.size >= this.options.maxChannelsPerClient) return 'limit';
    const entry = this.entry(channel);
    if (recovery === undefined) entry.subscribers.add(client);
    else (entry.recovering ??= new Map()).set(client, recovery);
    joined.add(channel);
    this.subscriptions++;
    return 'subscribed';
  }

  unsubscribe(client: HubClient, channel: string): boolean {
    if (this.clients.get(client)?.delete(channel) !== true) return false;
    const entry = this.channels.get(channel);
    if (entry !== undefined) {
      leave(entry, client);
      this.release(channel, entry);
    }
    this.subscriptions--;
    return true;
  }

  /**
   * The recovery's history read came back: the client becomes an ordinary subscriber, and the
   * result says what to send it now, after its ack (the replay and the live messages buffered
   * meanwhile). Null when the client left the channel (or re-subscribed) in between. Counted.
   */
  resolveRecovery(client: HubClient, channel: string, recovery: ChannelRecovery, read: HistoryRead): RecoveryResult | null {
    const entry = this.channels.get(channel);
    if (entry?.recovering?.get(client) !== recovery) return null;
    dropRecovering(entry, client);
    entry.subscribers.add(client);
    const result = recovery.resolve(read);
    this.stats.recoveries[result.outcome.result]++;
    const seam = result.messages.at(-1) ?? result.position;
    if (seam !== null) this.acked(client, channel, { offset: seam.offset, epoch: seam.epoch });
    return result;
  }

  /**
   * The client is acked at this position: from now on it is sent only messages after it (live
   * copies of older ones may still be in flight on the subscriber connection).
   */
  acked(client: HubClient, channel: string, position: Position): void {
    const entry = this.channels.get(channel);
    if (entry?.subscribers.has(client) === true) (entry.seams ??= new Map()).set(client, position);
  }

  /** The recovery's read failed: the client leaves the channel (its subscribe failed as a whole). */
  abandonRecovery(client: HubClient, channel: string, recovery: ChannelRecovery): void {
    if (this.channels.get(channel)?.recovering?.get(client) === recovery) this.unsubscribe(client, channel);
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
  broadcast(channel: string, payload: Buffer, position?: Position): void {
    this.stats.busMessages++;
    const entry = this.channels.get(channel);
    if (entry === undefined) return;
    // Only messages with a position can be merged with a history read; history-off messages
    // never meet a recovering client (without history a `since` is answered at once).
    if (entry.recovering !== null && position !== undefined) {
      const message = { offset: position.offset, epoch: position.epoch, bytes: payload };
      for (const recovery of entry.recovering.values()) recovery.push(message);
    }
    if (entry.subscribers.size === 0) return;
    this.fanOut(entry, textFrame(payload), position);
  }

  /** Every subscriber but, for each recovered client, the live copies of what its replay already sent. */
  private deliverPastSeams(entry: ChannelEntry, frame: Buffer, position: Position): void {
    const seams = entry.seams!;
    for (const client of entry.subscribers) {
      const seam = seams.get(client);
      if (seam !== undefined) {
        if (seam.epoch === position.epoch && position.offset <= seam.offset) continue;
        seams.delete(client); // messages come in offset order: this one is past the seam, and so is every later one
      }
      client.deliver(frame);
    }
    if (seams.size === 0) entry.seams = null;
  }

  /** The bus could not fill a gap on the channel: every local subscriber is told (`lost`), recovering ones through their recovery. */
  lost(channel: string, position: Position): void {
    const entry = this.channels.get(channel);
    if (entry === undefined) return;
    if (entry.recovering !== null) for (const recovery of entry.recovering.values()) recovery.lost(position);
    if (entry.subscribers.size === 0) return;
    const frame = textFrame(encodeLost(channel, position));
    for (const client of entry.subscribers) client.deliver(frame);
  }

  /** One frame to every subscriber of a channel, in the order frames arrive here. */
  private fanOut(entry: ChannelEntry, frame: Buffer, position?: Position): void {
    // The clock only when someone observes it: two reads per message are a visible share of a small fan-out.
    const observe = this.options.observeFanout;
    const started = observe === undefined ? 0 : performance.now();
    if (entry.seams === null || position === undefined) for (const client of entry.subscribers) client.deliver(frame);
    else this.deliverPastSeams(entry, frame, position);
    if (observe !== undefined) observe((performance.now() - started) / 1000);
  }

  /** The client's frames of this turn go out in one write once the turn's I/O is done. */
  scheduleFlush(client: HubClient): void {
    this.flusher.schedule(client);
  }

  /**
   * Takes the client out of every channel now, counts what the entry counts (an eviction or a
   * policy close) and closes it as the entry says. A client already closing is left alone.
   */
  disconnect(client: HubClient, disconnect: Disconnect): void {
    if (client.isClosing) return;
    const counts = disconnect.counts;
    if (counts !== null) {
      if ('evicted' in counts) {
        this.stats.evicted[counts.evicted]++;
        this.options.log?.info({ client: client.id, reason: counts.evicted, queued: client.queuedFrames }, 'client evicted');
      } else {
        this.stats.policyCloses[counts.policy]++;
      }
    }
    this.detach(client);
    client.close(disconnect);
  }

  /**
   * One heartbeat tick: pings the clients of the next slice (every client, with one slice); one
   * that has not answered its previous ping, a whole interval ago, is terminated.
   */
  heartbeat(): void {
    for (const client of this.heartbeats.next()) {
      if (client.isClosing) continue;
      if (!client.heartbeat()) this.disconnect(client, Disconnect.HeartbeatTimeout);
    }
  }

  /** Closes every client (shutdown). Resolves when all have gone. */
  closeAll(disconnect: Disconnect): Promise<void> {
    for (const client of this.clients.keys()) {
      this.detach(client);
      client.close(disconnect);
    }
    if (this.clients.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  private entry(channel: string): ChannelEntry {
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      entry = { subscribers: new Set(), pins: 0, recovering: null, seams: null };
      this.channels.set(channel, entry);
      this.bus.subscribe(channel);
    }
    return entry;
  }

  private release(channel: string, entry: ChannelEntry): void {
    if (entry.subscribers.size > 0 || entry.pins > 0 || entry.recovering !== null) return;
    this.channels.delete(channel);
    this.bus.unsubscribe(channel);
  }

  private detach(client: HubClient): void {
    const joined = this.clients.get(client);
    if (joined === undefined) return;
    for (const channel of joined) {
      const entry = this.channels.get(channel);
      if (entry === undefined) continue;
      leave(entry, client);
      this.release(channel, entry);
    }
    this.subscriptions -= joined.size;
    joined.clear();
  }
}

const NONE: ReadonlySet<string> = new Set();

function leave(entry: ChannelEntry, client: HubClient): void {
  if (!entry.subscribers.delete(client)) dropRecovering(entry, client);
  if (entry.seams?.delete(client) === true && entry.seams.size === 0) entry.seams = null;
}

function dropRecovering(entry: ChannelEntry, client: HubClient): void {
  if (entry.recovering === null || !entry.recovering.delete(client)) return;
  if (entry.recovering.size === 0) entry.recovering = null;
}

// One WebSocket client and its bounded send queue.
//
// ws buffers without bound, so data frames bypass ws.send(): pre-framed bytes wait in a
// BoundedQueue and go out in one corked write per event-loop turn (the owner flushes every client
// it was told about, once, after the turn's I/O: flush.ts), or on the socket's 'drain' when it was
// backed up. A frame that does not fit is handled by OVERFLOW_POLICY.
//
// A recovery replay may be larger than the queue: replay() puts what the queue cannot hold in a
// backlog behind it, which each flush tops the queue up from, and every later frame waits in that
// backlog too while it is non-empty, so the client gets the replay, then live frames, in order.
import type { Writable } from 'node:stream';
import WebSocket from 'ws';
import { Disconnect, DropReason } from './codes.js';
import type { OverflowPolicy } from './config.js';
import { pongFrame, textFrame } from './frame.js';
import type { HubClient } from './hub.js';
import { type BacklogBounds, BoundedQueue, backlogBounds } from './queue.js';
import type { Stats } from './stats.js';

/**
 * A final ping frame without payload, unmasked (server to client): the same two bytes for every
 * client at every heartbeat, written as data frames are, past ws (its Sender framed a new
 * header per ping, in two corked writes).
 */
const PING_FRAME = Buffer.from([0x89, 0x00]);

export interface ClientLimits {
  readonly queueMaxMessages: number;
  readonly queueMaxBytes: number;
  readonly overflowPolicy: OverflowPolicy;
  readonly slowClientEvictMs: number;
  readonly closeTimeoutMs: number;
  /** With the two below, bounds the backlog a paced replay uses (queue.ts backlogBounds). */
  readonly recoveryMaxMessages: number;
  readonly maxMessageBytes: number;
}

/** The hub, seen from a client: told when the client must be closed, or has frames to flush this turn. */
export interface ClientOwner {
  /** Detaches the client, counts the entry's counter, then calls client.close(disconnect). */
  disconnect(client: Client, disconnect: Disconnect): void;
  /** Calls client.flushScheduled() once, after the current turn's I/O. */
  scheduleFlush(client: Client): void;
}

export class Client implements HubClient {
  /** Cleared at each ping, set by anything the peer sends: a client still false at the next ping is dead. */
  private alive = true;
  /** Commands waiting on the bus for their reply (capped in connection.ts). */
  private pending = 0;
  /** On the owner's flush list for this turn, so it is put there once per turn. */
  private scheduled = false;
  /** The last flush stopped at the socket's high-water mark, so 'drain' flushes next (read here instead of the socket's state, which is colder). */
  private blocked = false;
  private readonly queue: BoundedQueue;
  /** Frames waiting behind a full queue since a replay did not fit it; null while none do, so other clients pay one branch. */
  private backlog: BoundedQueue | null = null;
  private readonly backlogBounds: BacklogBounds;
  private slowTimer: NodeJS.Timeout | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  private closing = false;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    /** The connection's socket; only its writable side is written here, past ws. */
    private readonly socket: Writable,
    private readonly limits: ClientLimits,
    private readonly stats: Stats,
    private readonly owner: ClientOwner,
  ) {
    this.queue = new BoundedQueue(limits.queueMaxMessages, limits.queueMaxBytes);
    this.backlogBounds = backlogBounds(limits.queueMaxMessages, limits.queueMaxBytes, limits.recoveryMaxMessages, limits.maxMessageBytes);
    socket.on('drain', this.flush);
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Frames waiting to be written: the queue and any backlog behind it. */
  get queuedFrames(): number {
    return this.queue.length + (this.backlog === null ? 0 : this.backlog.length);
  }

  /** Commands of this connection waiting on the bus for their reply. */
  get pendingCommands(): number {
    return this.pending;
  }

  /** A command now waits on the bus; commandSettled() once it has its answer. */
  commandStarted(): void {
    this.pending++;
  }

  commandSettled(): void {
    this.pending--;
  }

  /** The peer sent something (a message, a ping, a pong): it is alive. */
  markAlive(): void {
    this.alive = true;
  }

  /**
   * The heartbeat tick: false when the peer has sent nothing since the previous ping (it is dead;
   * the owner terminates it). Otherwise pings it and releases an idle queue's buffer, so a client
   * gone quiet holds none.
   */
  heartbeat(): boolean {
    if (!this.alive) return false;
    this.alive = false;
    // Not once ws has sent (or received) a close frame: nothing may follow it, as ws.ping() knew.
    if (this.ws.readyState === WebSocket.OPEN) this.socket.write(PING_FRAME);
    this.queue.release();
    return true;
  }

  /**
   * Hands one pre-framed message to this client. Never blocks, never throws. The frame is written
   * with every other frame this client gets in the same turn: one write (one syscall) per client
   * per turn instead of one per frame.
   */
  deliver(frame: Buffer): void {
    if (this.closing || this.ws.readyState !== WebSocket.OPEN) {
      // The peer has started closing but the hub has not heard 'close' yet.
      this.stats.dropped[DropReason.Disconnected]++;
      return;
    }
    if (this.backlog !== null) {
      // A replay is still being paced in: this frame goes behind it.
      this.wait(frame);
      return;
    }
    this.enqueue(frame, false);
  }

  /**
   * Hands a recovery replay to this client, in order. What the queue cannot take now waits in the
   * backlog instead of meeting the overflow policy, and goes out as the peer reads; every frame
   * delivered after it waits behind it.
   */
  replay(frames: readonly Buffer[]): void {
    if (this.closing || this.ws.readyState !== WebSocket.OPEN) {
      this.stats.dropped[DropReason.Disconnected] += frames.length;
      return;
    }
    for (const frame of frames) {
      if (this.backlog !== null) this.wait(frame);
      else this.enqueue(frame, true);
    }
  }

  /** Queues a frame, writing the queue first if it is full and the socket takes data; one that still does not fit overflows, or with `pace` waits in the backlog. */
  private enqueue(frame: Buffer, pace: boolean): void {
    if (!this.queue.fits(frame.length)) {
      // Full of this turn's frames while the socket still takes data: write them now, so the
      // bound only ever applies to frames that wait on the peer.
      const socket = this.socket;
      if (socket.writableLength < socket.writableHighWaterMark) {
        this.flush();
        // Even a frame bigger than the whole queue goes out while the socket takes data.
        if (this.queue.length === 0 && socket.writableLength < socket.writableHighWaterMark) {
          socket.write(frame);
          this.stats.deliveries++;
          this.blocked = socket.writableLength >= socket.writableHighWaterMark;
          return;
        }
      }
      if (!this.queue.fits(frame.length)) {
        if (pace) this.wait(frame);
        else this.overflow(frame, this.queue);
        return;
      }
    }
    this.push(this.queue, frame);
    this.schedule();
  }

  /** Appends a frame to the backlog (created on first use); past its bound the overflow policy applies to it. */
  private wait(frame: Buffer): void {
    let backlog = this.backlog;
    if (backlog === null) {
      const bounds = this.backlogBounds;
      backlog = this.backlog = new BoundedQueue(bounds.maxMessages, bounds.maxBytes);
    }
    if (backlog.fits(frame.length)) this.push(backlog, frame);
    else this.overflow(frame, backlog);
    this.schedule();
  }

  /** Asks the owner for an end-of-turn flush; a backed-up socket is flushed by its 'drain' instead. */
  private schedule(): void {
    if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      this.owner.scheduleFlush(this);
    }
  }

  /** Sends a small server reply (error or ack) through the same bounded path as data. */
  reply(payload: Buffer): void {
    this.deliver(textFrame(payload));
  }

  /** Answers a ping. ws would write the pong past any bound; a client that pings but never reads must not grow memory. */
  pong(payload: Buffer): void {
    this.deliver(pongFrame(payload));
  }

  /** The frame does not fit a queue (or backlog) that waits on the peer: OVERFLOW_POLICY decides. */
  private overflow(frame: Buffer, queue: BoundedQueue): void {
    const stats = this.stats;
    switch (this.limits.overflowPolicy) {
      case 'evict':
        stats.dropped[DropReason.Evicted]++;
        this.owner.disconnect(this, Disconnect.QueueOverflow);
        return;
      case 'drop-newest':
        stats.dropped[DropReason.QueueFull]++;
        break;
      case 'drop-oldest':
        if (!queue.canEverFit(frame.length)) {
          stats.dropped[DropReason.QueueFull]++;
          break;
        }
        while (!queue.fits(frame.length)) this.discardOldest(queue);
        this.push(queue, frame);
        break;
    }
    this.markSlow();
  }

  /** Queue and backlog frames both count as queued: moving one from the backlog into the queue changes no figure. */
  private push(queue: BoundedQueue, frame: Buffer): void {
    queue.push(frame);
    this.stats.queuedFrames++;
    this.stats.queuedBytes += frame.length;
  }

  private discardOldest(queue: BoundedQueue): void {
    const old = queue.shift()!;
    this.stats.queuedFrames--;
    this.stats.queuedBytes -= old.length;
    this.stats.dropped[DropReason.QueueFull]++;
  }

  /** The owner's end-of-turn flush (flush.ts): the client may be scheduled again from here on. */
  flushScheduled(): void {
    this.scheduled = false;
    this.flush();
  }

  /** Writes the queued frames unless the socket is backed up; one syscall for the batch thanks to cork. */
  private readonly flush = (): void => {
    const queue = this.queue;
    if (this.closing) return;
    if (this.ws.readyState !== WebSocket.OPEN) {
      // ws has sent its close frame (the peer closed, or broke a rule): no data may follow it.
      this.discardQueue(DropReason.Disconnected);
      return;
    }
    // Backpressure is what Node really holds for this socket (writableLength), not
    // writableNeedDrain: that flag stays set for the rest of the tick after the kernel has taken
    // everything. Corked frames count in writableLength, so each batch stops at the high-water
    // mark; uncork() hands it to the kernel, which on a reading peer takes it at once, and the next
    // batch follows. What Node holds unsent, and drops unseen if the peer is then terminated,
    // stays within the high-water mark plus one frame.
    const socket = this.socket;
    const hwm = socket.writableHighWaterMark;
    const stats = this.stats;
    for (;;) {
      while (queue.length > 0 && socket.writableLength < hwm) {
        socket.cork();
        do {
          const frame = queue.shift()!;
          stats.queuedFrames--;
          stats.queuedBytes -= frame.length;
          socket.write(frame);
          stats.deliveries++;
        } while (queue.length > 0 && socket.writableLength < hwm);
        socket.uncork();
      }
      const backlog = this.backlog;
      if (backlog === null) break;
      // Top the queue up from the backlog; while the socket still takes data, write that too.
      backlog.moveInto(queue);
      if (backlog.length === 0) this.backlog = null;
      if (queue.length === 0 || socket.writableLength >= hwm) break;
    }
    // Past the mark a write returned false, so 'drain' comes and flushes the rest.
    this.blocked = socket.writableLength >= hwm;
    if (this.backlog !== null) {
      // More than a queue behind and the peer is not taking it: the client is slow, and is
      // evicted after SLOW_CLIENT_EVICT_MS unless it catches up.
      if (this.blocked) this.markSlow();
      return;
    }
    // Caught up: the client is no longer behind, whatever it dropped before (even a frame too
    // big for any queue, which left the queue empty).
    if (queue.length === 0) this.clearSlow();
  };

  private markSlow(): void {
    if (this.slowTimer !== null) return;
    this.stats.slowClients++;
    this.slowTimer = setTimeout(this.onSlowTimeout, this.limits.slowClientEvictMs);
  }

  private clearSlow(): void {
    if (this.slowTimer === null) return;
    clearTimeout(this.slowTimer);
    this.slowTimer = null;
    this.stats.slowClients--;
  }

  private readonly onSlowTimeout = (): void => {
    this.slowTimer = null;
    this.stats.slowClients--;
    this.owner.disconnect(this, Disconnect.SlowConsumer);
  };

  /**
   * Ends the connection as the entry says. Frames still queued are discarded and counted (as
   * `evicted` for an eviction). With a close code it starts the handshake, and a peer that does not
   * complete it within CLOSE_TIMEOUT_MS is terminated; without one (a dead peer) it terminates now.
   */
  close(disconnect: Disconnect): void {
    if (this.closing) return;
    const dropReason = disconnect.counts !== null && 'evicted' in disconnect.counts ? DropReason.Evicted : DropReason.Disconnected;
    const ws = this.ws;
    if (disconnect.code === null) {
      this.closing = true;
      this.discardQueue(dropReason);
      ws.terminate();
      return;
    }
    // Frames of this turn still waiting for its end go out ahead of the close frame, as they
    // would have without coalescing; only those the peer cannot take are discarded.
    if (this.queue.length > 0 || this.backlog !== null) this.flush();
    this.closing = true;
    this.discardQueue(dropReason);
    if (ws.readyState === WebSocket.OPEN) ws.close(disconnect.code, disconnect.reason);
    // Also when the peer started the close: ws would otherwise wait 30 s for a stuck one.
    if (ws.readyState !== WebSocket.CLOSED) {
      this.closeTimer = setTimeout(() => ws.terminate(), this.limits.closeTimeoutMs);
    }
  }

  /** Called once the connection has closed: releases everything the client still holds. */
  dispose(): void {
    this.closing = true;
    this.discardQueue(DropReason.Disconnected);
    if (this.closeTimer !== null) {
      clearTimeout(this.closeTimer);
      this.closeTimer = null;
    }
    this.socket.off('drain', this.flush);
  }

  /** Discards the queue and any backlog behind it, each frame counted as dropped for this reason. */
  private discardQueue(reason: DropReason): void {
    this.clearSlow();
    this.discard(this.queue, reason);
    if (this.backlog !== null) {
      this.discard(this.backlog, reason);
      this.backlog = null;
    }
  }

  private discard(queue: BoundedQueue, reason: DropReason): void {
    const discarded = queue.length;
    if (discarded === 0) return;
    this.stats.queuedFrames -= discarded;
    this.stats.queuedBytes -= queue.byteLength;
    queue.clear();
    this.stats.dropped[reason] += discarded;
  }
}

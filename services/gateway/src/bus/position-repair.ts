// Gap repair on the receiving gateway (history on): offsets replace the envelope's sequences.
// Per channel it knows the last position accounted for. A jump (its subscriber connection
// dropped and came back, or Redis lost a message) asks the host to read the missing offsets
// from history and holds later messages of that channel until the read comes back; then the
// repaired and the held messages go out in order, each once. What history no longer holds
// (trimmed, another epoch, the read failed) becomes one `lost` event at the position the channel
// jumped to, and the channel moves on: a client is told, never silently skipped.
//
// A new epoch is a loss only if the old epoch's tail may have been missed: on one unbroken
// subscriber connection Redis delivered every message before the switch (a quiet channel that
// expired and starts over at offset 1 is not a loss). Across a reconnect that tail is unknowable:
// one `lost` at offset 0 of the new epoch; the new epoch's head is history like any gap, and is
// repaired. After a reconnect no later message may come to reveal a lost tail, so the host reads
// each channel's top once resubscribed (top()).
//
// An offset that goes backwards under one epoch (a Redis Cluster failover promoted a replica that
// missed the last writes, which this gateway already delivered) would let the next publishes
// reuse offsets for other messages. Where the host can fence (fence()), such a channel holds its
// messages while the host moves the channel's history to a new epoch; the jump to it is one `lost`.
//
// Pure: no I/O, no timers. The host reads history asynchronously and never calls back from
// inside repair(); a failed or timed-out read is repairFailed().
import type { HistoryRead } from './history-read.js';
import type { Position, PositionedMessage } from './position.js';

/** Messages held per channel while its repair runs; past it the repair is abandoned (see hold). */
export const MAX_HELD_PER_CHANNEL = 1000;

export interface RepairHost {
  /** In order, each offset once: to the channel's local subscribers. */
  deliver(channel: string, message: PositionedMessage): void;
  /** Everything up to position was lost or skipped (the `lost` frame): messages after it follow. */
  lost(channel: string, position: Position): void;
  /** Read offsets after..to of epoch, then call repaired(channel, id, read) or repairFailed(channel, id). */
  repair(channel: string, id: number, epoch: string, after: number, to: number): void;
  /**
   * The channel's offsets went backwards under epoch: observed is the furthest position heard.
   * Move its history to a new epoch unless it still stands at or past observed (the fence script),
   * then call fenced(channel, id, position now, top found) or repairFailed(channel, id). Optional: without it a
   * backwards offset counts as a duplicate, as before.
   */
  fence?(channel: string, id: number, observed: Position): void;
}

/** Where the core counts: the gateway's Stats. */
export interface RepairCounts {
  /** Missing messages delivered from history. */
  busGapsRepaired: number;
  /** Missing messages history no longer held (unrepaired gaps; a lost epoch tail of unknown size counts 0). */
  busGaps: number;
  /** `lost` events: each is one frame to every local subscriber of the channel. */
  busLost: number;
  /** Repeated offsets dropped (not counting the overlap of a repair with live messages). */
  busDuplicates: number;
  /** Offsets a failover took back out of history after this gateway had heard them (fenced into a new epoch). */
  busRewound: number;
}

interface Repair {
  readonly id: number;
  readonly epoch: string;
  readonly after: number;
  readonly to: number;
  /** A fence (offsets went backwards), not a read of missing offsets. */
  readonly fence: boolean;
}

interface Held {
  readonly message: PositionedMessage;
  readonly connection: number;
}

interface ChannelState {
  /** null until the first message or top sets the baseline. */
  epoch: string | null;
  /** The last offset accounted for (delivered or declared lost). */
  last: number;
  /** The subscriber connection the channel was last heard on: another one means it may have missed some. */
  connection: number;
  repair: Repair | null;
  /** Messages after the gap under repair, in arrival order, with the connection each came on. */
  held: Held[];
  /** Offsets up to here came from a repair: live copies of them are expected, not duplicates. */
  repairedTo: number;
  /** A top check that came while a repair ran: applied after it. */
  pendingTop: Position | null;
  /** An epoch fenced away: its late messages are covered by the `lost` of the fence. */
  retired: string | null;
}

export class GapRepair {
  private readonly channels = new Map<string, ChannelState>();
  /** Counts subscriber connections (connectionLost()). */
  private connection = 0;
  private repairs = 0;
  private heldTotal = 0;

  constructor(
    private readonly host: RepairHost,
    private readonly counts: RepairCounts,
    private readonly maxHeld = MAX_HELD_PER_CHANNEL,
  ) {}

  /** Messages held across channels (a gauge). */
  get holding(): number {
    return this.heldTotal;
  }

  get trackedChannels(): number {
    return this.channels.size;
  }

  /** Redis confirmed the channel's SUBSCRIBE: track it (from baseline, else from its next message). A tracked channel keeps its state. */
  watch(channel: string, baseline?: Position): void {
    if (this.channels.has(channel)) return;
    this.channels.set(channel, {
      epoch: baseline?.epoch ?? null,
      last: baseline?.offset ?? 0,
      connection: this.connection,
      repair: null,
      held: [],
      repairedTo: 0,
      pendingTop: null,
      retired: null,
    });
  }

  /** The gateway gave the channel up: a late repair for it is ignored. */
  forget(channel: string): void {
    const state = this.channels.get(channel);
    if (state === undefined) return;
    this.heldTotal -= state.held.length;
    this.channels.delete(channel);
  }

  /** The subscriber connection dropped: every channel may miss what is published until it is resubscribed. */
  connectionLost(): void {
    this.connection++;
  }

  /** A message from the bus. Untracked channels are delivered as they come. */
  accept(channel: string, message: PositionedMessage): void {
    const state = this.channels.get(channel);
    if (state === undefined) {
      this.host.deliver(channel, message);
      return;
    }
    if (state.repair !== null) this.hold(channel, state, message);
    else this.advance(channel, state, message, this.connection);
  }

  /**
   * The channel's top, read after it was resubscribed. Only a channel not heard since the
   * reconnect needs it: a message heard since revealed (and repaired) any gap before it, and
   * nothing is missed while subscribed. Read replies and messages travel on different
   * connections, so a top older than what was heard is expected and ignored.
   */
  top(channel: string, position: Position): void {
    const state = this.channels.get(channel);
    if (state === undefined || state.connection === this.connection) return;
    if (state.repair !== null) {
      state.pendingTop = position;
      return;
    }
    this.applyTop(channel, state, position);
  }

  /** The history read for repair id came back. */
  repaired(channel: string, id: number, read: HistoryRead): void {
    const state = this.channels.get(channel);
    const repair = state?.repair;
    if (state === undefined || repair === null || repair === undefined || repair.id !== id) return; // abandoned or forgotten
    state.repair = null;
    if (read.epoch !== repair.epoch) {
      this.declareLost(channel, state, repair, repair.after + 1);
    } else {
      let next = repair.after + 1;
      for (const m of read.messages) {
        if (m.offset < next || m.offset > repair.to) continue;
        if (m.offset > next) this.lostRun(channel, repair.epoch, next, m.offset - 1);
        this.counts.busGapsRepaired++;
        this.host.deliver(channel, { offset: m.offset, epoch: repair.epoch, bytes: m.bytes });
        next = m.offset + 1;
      }
      if (next <= repair.to) this.lostRun(channel, repair.epoch, next, repair.to);
      state.epoch = repair.epoch;
      state.last = repair.to;
      state.repairedTo = repair.to;
    }
    this.release(channel, state);
  }

  /** The repair read failed (Redis down, timed out): what it was to fetch is lost. */
  repairFailed(channel: string, id: number): void {
    const state = this.channels.get(channel);
    const repair = state?.repair;
    if (state === undefined || repair === null || repair === undefined || repair.id !== id) return;
    state.repair = null;
    if (repair.fence) {
      // Not fenced: the backwards messages held are declared lost rather than fenced again and again.
      this.counts.busLost++;
      this.host.lost(channel, { offset: Math.max(state.last, ...state.held.map((h) => h.message.offset)), epoch: state.epoch! });
      state.connection = this.connection;
      state.last = Math.max(state.last, ...state.held.map((h) => h.message.offset));
    } else {
      this.declareLost(channel, state, repair, repair.after + 1);
    }
    this.release(channel, state);
  }

  /**
   * The fence for id came back with the channel's position now and the top it found. Another
   * epoch: the history went backwards and was declared lost; the offsets heard beyond the top
   * found are counted as rewound, and one `lost` at the new position tells the clients. The same
   * epoch: nothing went backwards.
   */
  fenced(channel: string, id: number, position: Position, found: number): void {
    const state = this.channels.get(channel);
    const repair = state?.repair;
    if (state === undefined || repair === null || repair === undefined || repair.id !== id || !repair.fence) return;
    state.repair = null;
    state.connection = this.connection;
    if (position.epoch !== repair.epoch) {
      this.counts.busRewound += Math.max(0, repair.to - found);
      this.counts.busLost++;
      this.host.lost(channel, position);
      state.retired = repair.epoch;
      state.epoch = position.epoch;
      state.last = position.offset;
      state.repairedTo = 0;
    }
    this.release(channel, state);
  }

  /** One message heard on connection, in order. */
  private advance(channel: string, state: ChannelState, m: PositionedMessage, connection: number): void {
    if (state.epoch === null) {
      this.take(channel, state, m, connection);
      return;
    }
    if (m.epoch === state.retired) return; // published before the fence: covered by its `lost`
    if (m.epoch !== state.epoch) {
      // Heard on this connection up to the switch, the old epoch's tail reached us; across a
      // reconnect it may not have, and nothing can tell: lost, up to the new epoch's start.
      if (state.connection !== connection) this.epochLost(channel, m.epoch);
      // Either way the new epoch starts at 0, and any hole before m is an ordinary gap.
      state.epoch = m.epoch;
      state.last = 0;
      state.repairedTo = 0;
    }
    if (m.offset <= state.last) {
      if (m.offset > state.repairedTo && connection !== state.connection && this.host.fence !== undefined) {
        // Heard on a newer connection than the channel's last message: not a repeat of it (pub/sub
        // delivers once per connection) but an offset reused after history went backwards.
        state.held.push({ message: m, connection });
        this.heldTotal++;
        this.startFence(channel, state);
        return;
      }
      if (m.offset > state.repairedTo) this.counts.busDuplicates++;
      return;
    }
    if (m.offset === state.last + 1) {
      this.take(channel, state, m, connection);
      return;
    }
    state.held.push({ message: m, connection });
    this.heldTotal++;
    this.startRepair(channel, state, state.epoch, state.last, m.offset - 1);
  }

  private take(channel: string, state: ChannelState, m: PositionedMessage, connection: number): void {
    if (state.epoch !== m.epoch) state.repairedTo = 0;
    state.epoch = m.epoch;
    state.last = m.offset;
    state.connection = connection;
    this.host.deliver(channel, m);
  }

  private applyTop(channel: string, state: ChannelState, position: Position): void {
    const interrupted = state.connection !== this.connection;
    state.connection = this.connection; // read after the resubscribe: the outage window is covered
    if (state.epoch === null) {
      state.epoch = position.epoch;
      state.last = position.offset;
      return;
    }
    if (position.epoch !== state.epoch) {
      // The old epoch is gone with whatever of its tail was missed; the new one is repaired from 0.
      if (interrupted) this.epochLost(channel, position.epoch);
      state.epoch = position.epoch;
      state.last = 0;
      state.repairedTo = 0;
    }
    // Not heard since the reconnect, so the top read after it cannot be older than what was heard:
    // the history went backwards (a promoted replica missed writes).
    if (interrupted && position.offset < state.last && this.host.fence !== undefined) {
      this.startFence(channel, state);
      return;
    }
    if (position.offset > state.last) this.startRepair(channel, state, state.epoch, state.last, position.offset);
  }

  /**
   * Holds a message behind the running repair. Past maxHeld the repair is abandoned: its gap is
   * declared lost and the held messages go out, so memory stays bounded and nothing that did
   * arrive is dropped; a late reply for the abandoned repair is ignored.
   */
  private hold(channel: string, state: ChannelState, m: PositionedMessage): void {
    if (state.held.length < this.maxHeld) {
      state.held.push({ message: m, connection: this.connection });
      this.heldTotal++;
      return;
    }
    const repair = state.repair!;
    state.repair = null;
    this.declareLost(channel, state, repair, repair.after + 1);
    this.release(channel, state);
    this.accept(channel, m);
  }

  /** Holds the channel while the host moves its history past the furthest offset heard. */
  private startFence(channel: string, state: ChannelState): void {
    const repair = { id: ++this.repairs, epoch: state.epoch!, after: state.last, to: state.last, fence: true };
    state.repair = repair;
    this.host.fence!(channel, repair.id, { offset: state.last, epoch: repair.epoch });
  }

  private startRepair(channel: string, state: ChannelState, epoch: string, after: number, to: number): void {
    const repair = { id: ++this.repairs, epoch, after, to, fence: false };
    state.repair = repair;
    this.host.repair(channel, repair.id, epoch, after, to);
  }

  /** Offsets from..repair.to of the repair are gone: one lost event, and the channel moves past them. */
  private declareLost(channel: string, state: ChannelState, repair: Repair, from: number): void {
    this.lostRun(channel, repair.epoch, from, repair.to);
    state.epoch = repair.epoch;
    state.last = repair.to;
  }

  /** The old epoch's tail may be lost, its size unknown (no gap counted): one event, at the new epoch's start. */
  private epochLost(channel: string, epoch: string): void {
    this.counts.busLost++;
    this.host.lost(channel, { offset: 0, epoch });
  }

  private lostRun(channel: string, epoch: string, from: number, to: number): void {
    this.counts.busGaps += to - from + 1;
    this.counts.busLost++;
    this.host.lost(channel, { offset: to, epoch });
  }

  /** The held messages, in order, through the usual checks; one may reveal the next gap, which holds the rest again. */
  private release(channel: string, state: ChannelState): void {
    const held = state.held;
    state.held = [];
    this.heldTotal -= held.length;
    for (let i = 0; i < held.length; i++) {
      if (state.repair !== null) {
        state.held.push(...held.slice(i));
        this.heldTotal += held.length - i;
        return;
      }
      const { message, connection } = held[i]!;
      this.advance(channel, state, message, connection);
    }
    const top = state.pendingTop;
    state.pendingTop = null;
    if (top !== null && state.repair === null && state.connection !== this.connection) this.applyTop(channel, state, top);
  }
}

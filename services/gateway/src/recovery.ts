// Recovery on resubscribe: a subscribe with `since` is registered for live messages first (they
// are buffered here), then the channel's history is read; resolve() merges the two by offset
// (centrifuge's MergePublications is the model) and decides. Recovered: exactly the messages
// after `since`, in order, no duplicate at the seam, then the live ones. Not recovered: nothing
// replayed, only the live messages after the position the ack reports, so that "reload, then
// everything after the ack's position follows" holds either way. Never a partial replay.
//
// Pure: the hub pushes live messages (and `lost` jumps) into one Recovery per recovering
// subscription, and calls resolve() once, in the same turn as it sends the ack and the messages.
import type { HistoryRead } from './bus/history-read.js';
import type { Position, PositionedMessage } from './bus/position.js';
import { RecoveryResult as ResultLabel } from './codes.js';

export interface RecoveryOutcome {
  /** Label of hubcast_recoveries_total{result}. */
  readonly result: ResultLabel;
  readonly recovered: boolean;
  readonly why: string;
}

/** Every way a recovery ends, one entry each: call sites and tests pass the entry. */
export const Recovery = {
  Recovered: { result: ResultLabel.Recovered, recovered: true, why: 'every missed message replayed' },
  EpochMismatch: {
    result: ResultLabel.EpochMismatch,
    recovered: false,
    why: "the channel's history has another epoch: lost since (expired, evicted, flushed) or never this one",
  },
  BeyondTop: { result: ResultLabel.BeyondTop, recovered: false, why: "the offset is past the channel's top" },
  TooMany: { result: ResultLabel.TooMany, recovered: false, why: 'more messages missed than RECOVERY_MAX_MESSAGES' },
  Missing: { result: ResultLabel.Missing, recovered: false, why: 'missed messages are no longer in history (trimmed past HISTORY_SIZE)' },
  Interrupted: {
    result: ResultLabel.Interrupted,
    recovered: false,
    why: 'the live stream jumped while history was read (a lost gap or a new epoch)',
  },
  Overflow: { result: ResultLabel.Overflow, recovered: false, why: 'more live messages arrived during the read than are buffered' },
  NoHistory: { result: ResultLabel.NoHistory, recovered: false, why: 'history is off (HISTORY_SIZE=0)' },
} as const satisfies Record<string, RecoveryOutcome>;

export interface RecoveryResult {
  readonly outcome: RecoveryOutcome;
  /** The ack's position: everything up to it is replayed (recovered) or to be reloaded; null without history. */
  readonly position: Position | null;
  /** What to send after the ack, in order: the replay (recovered only), then the buffered live messages. */
  readonly messages: readonly PositionedMessage[];
}

export interface RecoveryLimits {
  /** RECOVERY_MAX_MESSAGES: more missed than this is not recovered (the read asks for this many). */
  readonly maxMessages: number;
  /** Live messages buffered during the read; past it they are dropped and the recovery fails. */
  readonly maxBuffered: number;
}

/** The ack of a recovering subscribe while history is off. */
export const WITHOUT_HISTORY: RecoveryResult = { outcome: Recovery.NoHistory, position: null, messages: [] };

export class ChannelRecovery {
  /** Live messages since the subscription was registered, or since the last jump. */
  private live: PositionedMessage[] = [];
  /** The last jump of the live stream (a lost gap, an overflow): what came before it is superseded. */
  private jump: { readonly position: Position; readonly outcome: RecoveryOutcome } | null = null;
  private resolved = false;

  constructor(
    readonly since: Position,
    private readonly limits: RecoveryLimits,
  ) {}

  /** A live message for this subscription, while the read runs. */
  push(message: PositionedMessage): void {
    if (this.live.length < this.limits.maxBuffered) {
      this.live.push(message);
      return;
    }
    // Bounded: drop what is held and this message; the client will be told to reload up to here.
    this.live = [];
    this.jump = { position: { offset: message.offset, epoch: message.epoch }, outcome: Recovery.Overflow };
  }

  /** The live stream declared a loss (the gateway could not repair a gap): it continues after position. */
  lost(position: Position): void {
    this.live = [];
    this.jump = { position, outcome: Recovery.Interrupted };
  }

  /** The history read came back (asked with limit maxMessages): the decision and what to send. Once. */
  resolve(read: HistoryRead): RecoveryResult {
    if (this.resolved) throw new Error('a recovery resolves once');
    this.resolved = true;
    if (this.jump !== null) {
      const after = walk(this.jump.position, this.live);
      return { outcome: this.jump.outcome, position: after.position, messages: after.tail };
    }
    const top: Position = { offset: read.top, epoch: read.epoch };
    const after = walk(top, this.live);
    if (after.jumped) return { outcome: Recovery.Interrupted, position: after.position, messages: after.tail };
    const { outcome, replay } = this.decide(read);
    return { outcome, position: top, messages: outcome === Recovery.Recovered ? [...replay, ...after.tail] : after.tail };
  }

  /** The outcome, and on success the replay: offsets since+1 .. top. */
  private decide(read: HistoryRead): { outcome: RecoveryOutcome; replay: PositionedMessage[] } {
    const { since, limits } = this;
    const fail = (outcome: RecoveryOutcome): { outcome: RecoveryOutcome; replay: PositionedMessage[] } => ({ outcome, replay: [] });
    if (since.epoch !== read.epoch) return fail(Recovery.EpochMismatch);
    if (since.offset > read.top) return fail(Recovery.BeyondTop);
    if (read.top - since.offset > limits.maxMessages) return fail(Recovery.TooMany);
    const slots = this.fill(read);
    if (slots.includes(undefined)) return fail(Recovery.Missing);
    return { outcome: Recovery.Recovered, replay: slots as PositionedMessage[] };
  }

  /** Offsets since+1 .. top from the read, holes filled from the live buffer (a message trimmed during the read). */
  private fill(read: HistoryRead): (PositionedMessage | undefined)[] {
    const base = this.since.offset + 1;
    const slots = new Array<PositionedMessage | undefined>(read.top - this.since.offset).fill(undefined);
    for (const m of read.messages) {
      if (m.offset >= base && m.offset <= read.top) slots[m.offset - base] = { offset: m.offset, epoch: read.epoch, bytes: m.bytes };
    }
    for (const m of this.live) {
      if (m.epoch === read.epoch && m.offset >= base && m.offset <= read.top && slots[m.offset - base] === undefined) {
        slots[m.offset - base] = m;
      }
    }
    return slots;
  }
}

/**
 * The live messages that follow start, in order. Those at or before the last position are
 * skipped (the read holds them, or they are superseded). A hole or another epoch is a jump: only
 * the messages from it on count, and they follow the position just before the one that jumped.
 */
function walk(start: Position, live: readonly PositionedMessage[]): { position: Position; tail: PositionedMessage[]; jumped: boolean } {
  let position = start;
  let last = start;
  let tail: PositionedMessage[] = [];
  let jumped = false;
  for (const m of live) {
    if (m.epoch === last.epoch) {
      if (m.offset <= last.offset) continue;
      if (m.offset === last.offset + 1) {
        tail.push(m);
        last = m;
        continue;
      }
    }
    jumped = true;
    position = { offset: m.offset - 1, epoch: m.epoch };
    tail = [m];
    last = m;
  }
  return { position, tail, jumped };
}

// Sequence numbers on the bus: the publisher stamps, every receiving gateway checks.
//
// Why per (origin, channel) and not per origin: a gateway subscribes only to the channels its
// clients hold. With one counter per origin shared by all channels, a subscriber of C that sees
// 5 then 9 cannot tell whether 6-8 went to channels it does not hold or were lost. A counter per
// (origin, channel) is contiguous for every subscriber of that channel, so any hole is a loss.
//
// A publisher cannot keep a counter for every channel it ever published to (clients choose the
// names), so it keeps at most maxStreams and forgets the oldest. Starting that channel again
// would restart at seq 1, so each counter also carries a stream number, increasing per origin:
// a receiver that sees a newer stream knows the origin started over and counts seq - 1 missing.
import { ENVELOPE_BYTES, readOrigin, readSeq, readStream, writeEnvelope } from './envelope.js';

/** Channels a publisher keeps counters for before forgetting the oldest. */
export const MAX_PUBLISH_STREAMS = 65_536;
/** Origins a receiver tracks per channel before forgetting the least recently heard. */
export const MAX_ORIGINS_PER_CHANNEL = 64;

interface Counter {
  readonly stream: number;
  seq: number;
}

export class SequenceStamper {
  private readonly counters = new Map<string, Counter>();
  private streams = 0;

  constructor(
    readonly origin: number,
    private readonly maxStreams = MAX_PUBLISH_STREAMS,
  ) {}

  /** Writes this origin's next envelope for the channel into the head of out. */
  stamp(channel: string, out: Buffer): void {
    let counter = this.counters.get(channel);
    if (counter === undefined) {
      // Oldest-created first: a forgotten busy channel just starts a new stream, which receivers
      // take without a false gap; only a loss at the very end of the old stream goes unseen.
      if (this.counters.size >= this.maxStreams) this.counters.delete(this.counters.keys().next().value!);
      counter = { stream: ++this.streams, seq: 0 };
      this.counters.set(channel, counter);
    }
    writeEnvelope(out, this.origin, counter.stream, ++counter.seq);
  }

  /**
   * The bus message for a payload: this origin's next envelope, then the payload. One copy per
   * publish (not per delivery). From here the sequence number is spent: if Redis takes the
   * message but its reply is lost, subscribers get it; if not, they count a gap.
   */
  envelop(channel: string, payload: Buffer): Buffer {
    const message = Buffer.allocUnsafe(ENVELOPE_BYTES + payload.length);
    this.stamp(channel, message);
    payload.copy(message, ENVELOPE_BYTES);
    return message;
  }
}

interface Heard {
  stream: number;
  seq: number;
  /** Tracker clock at the last message: the least recently heard origin is forgotten first. */
  used: number;
}

/** Where the tracker counts: the gateway's Stats. */
export interface SequenceCounts {
  busGaps: number;
  busDuplicates: number;
}

/**
 * Checks each (origin, channel) sequence on the channels this gateway holds. The first message
 * heard from an origin on a channel is the baseline: what that origin sent before it is not
 * counted, since this gateway may not have held the channel then. After that, every hole is a
 * gap, including messages published while this gateway's subscriber connection was down or not
 * yet resubscribed: its clients held the channel throughout and did not get them.
 *
 * A channel taken up afresh is held (hold) but not tracked until Redis confirms its SUBSCRIBE
 * (watch). Messages arriving in between can only come from an earlier subscription to the same
 * channel, still in flight after a quick unsubscribe/subscribe: taking one as the baseline would
 * count what was published while the channel was not held as gaps, though nobody here was owed it.
 */
export class SequenceTracker {
  private readonly channels = new Map<string, Map<number, Heard>>();
  /** Held, SUBSCRIBE not yet confirmed: delivered untracked. */
  private readonly held = new Set<string>();
  private clock = 0;

  constructor(
    private readonly counts: SequenceCounts,
    private readonly maxOrigins = MAX_ORIGINS_PER_CHANNEL,
  ) {}

  get trackedChannels(): number {
    return this.channels.size + this.held.size;
  }

  /**
   * The gateway took the channel up and sent its SUBSCRIBE: until watch(), its messages are
   * delivered but neither counted nor set a baseline. A channel already tracked keeps its state.
   */
  hold(channel: string): void {
    if (!this.channels.has(channel)) this.held.add(channel);
  }

  /**
   * Redis confirmed the channel's SUBSCRIBE: the next message from each origin is its baseline.
   * A channel already tracked (a resubscribe after a reconnect) keeps its state, so what was
   * published while the subscriber was away counts as gaps: its clients were owed it.
   */
  watch(channel: string): void {
    this.held.delete(channel);
    if (!this.channels.has(channel)) this.channels.set(channel, new Map());
  }

  /** Forgets a channel this gateway gave up: nobody here is owed its messages any more. */
  forget(channel: string): void {
    this.channels.delete(channel);
    this.held.delete(channel);
  }

  /** Counts any gap before this message; false when it is a duplicate that must not be delivered. */
  accept(channel: string, message: Buffer): boolean {
    const origins = this.channels.get(channel);
    // Not held here (the hub has no one to deliver to), or held but not yet confirmed: from the
    // previous subscription, published while a client here may still have held the channel, so
    // delivered, but it must not become the baseline. Redis sends a connection's pushes once and
    // in order, so it cannot repeat a message that comes after the confirmation.
    if (origins === undefined) return true;
    const origin = readOrigin(message);
    const stream = readStream(message);
    const seq = readSeq(message);
    const used = ++this.clock;
    const heard = origins.get(origin);
    if (heard === undefined) {
      this.remember(origins, origin, { stream, seq, used });
      return true;
    }
    heard.used = used;
    if (stream === heard.stream) {
      if (seq <= heard.seq) {
        this.counts.busDuplicates++;
        return false;
      }
      this.counts.busGaps += seq - heard.seq - 1;
      heard.seq = seq;
      return true;
    }
    if (stream < heard.stream) {
      // Redis delivers one connection's messages in order, so an older stream can only be a replay.
      this.counts.busDuplicates++;
      return false;
    }
    // The origin forgot this channel and started over: seq - 1 of the new stream never arrived.
    this.counts.busGaps += seq - 1;
    heard.stream = stream;
    heard.seq = seq;
    return true;
  }

  private remember(origins: Map<number, Heard>, origin: number, heard: Heard): void {
    if (origins.size >= this.maxOrigins) {
      // Rare (more origins than a cluster has gateways means restarted ones linger): a scan is fine.
      let oldest: number | undefined;
      let oldestUsed = Infinity;
      for (const [id, h] of origins) {
        if (h.used < oldestUsed) {
          oldestUsed = h.used;
          oldest = id;
        }
      }
      if (oldest !== undefined) origins.delete(oldest);
    }
    origins.set(origin, heard);
  }
}

// One subscription's position in its channel's history: what to send as `since` on a
// resubscribe, which message offsets are new, and when a gap or a new epoch means messages
// were lost. Pure.

export interface Position {
  readonly offset: number;
  readonly epoch: string;
}

/** What to do with a message. */
export type Verdict =
  /** New: deliver it. */
  | 'deliver'
  /** At or below the last offset seen in this epoch: already delivered, drop it. */
  | 'duplicate'
  /** Deliver it, but offsets were skipped or the epoch changed: report a loss first. */
  | 'lost';

/** The subscribe ack's position fields (all absent when the channel has no history). */
export interface AckPosition {
  readonly offset?: unknown;
  readonly epoch?: unknown;
  readonly recovered?: unknown;
}

export interface Subscribed {
  /** A `since` was sent with the subscribe. */
  readonly wasRecovering: boolean;
  /** The gateway replays exactly what was missed (ack `recovered:true`). */
  readonly recovered: boolean;
}

const isOffset = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export class PositionTracker {
  private offset = 0;
  private epoch: string | undefined = undefined;

  /** The last position seen, or undefined before any (or on a channel without history). */
  get position(): Position | undefined {
    return this.epoch === undefined ? undefined : { offset: this.offset, epoch: this.epoch };
  }

  /** The `since` for a (re)subscribe: the last position seen, if any. */
  since(): Position | undefined {
    return this.position;
  }

  /** The subscribe was acked. `sentSince`: whether it carried a `since`. */
  subscribed(ack: AckPosition, sentSince: boolean): Subscribed {
    const recovered = sentSince && ack.recovered === true;
    // On recovered:true the ack carries the top offset and the missed messages follow: keep our
    // own position, or the replay would be dropped as duplicates. Otherwise continue from the
    // ack's position (anything at or below it predates this subscription).
    if (!recovered && isOffset(ack.offset) && typeof ack.epoch === 'string') {
      this.offset = ack.offset;
      this.epoch = ack.epoch;
    }
    return { wasRecovering: sentSince, recovered };
  }

  /** A message arrived with these position fields (undefined when the channel has no history). */
  message(offset: unknown, epoch: unknown): Verdict {
    if (!isOffset(offset) || typeof epoch !== 'string') return 'deliver';
    if (epoch !== this.epoch) {
      const first = this.epoch === undefined;
      this.offset = offset;
      this.epoch = epoch;
      return first ? 'deliver' : 'lost';
    }
    if (offset <= this.offset) return 'duplicate';
    const skipped = offset > this.offset + 1;
    this.offset = offset;
    return skipped ? 'lost' : 'deliver';
  }

  /**
   * The gateway's `lost` frame: history could not fill a gap. Its offset is the last one the
   * gateway accounts for (lost or delivered); the next message is offset + 1, so the position
   * becomes that offset, and a later recovery from it replays nothing lost.
   */
  lost(offset: unknown, epoch: unknown): void {
    if (!isOffset(offset) || typeof epoch !== 'string') return;
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.offset = offset;
    } else if (offset > this.offset) {
      this.offset = offset;
    }
  }
}

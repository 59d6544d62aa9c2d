// The one publish pipeline, for the WebSocket `publish` and POST /publish alike: validate,
// permission, encode, size, the caller's capacity, bus publish, counting. Each caller only maps
// the outcome to its transport (ack or error frame; HTTP status).
import type { Grant } from './auth.js';
import type { Bus, BusUnavailableError, PublishReceipt } from './bus/bus.js';
import { ErrorCode, type PublishRejectReason, type PublishSource, Refusal, type Refused } from './codes.js';
import { type JsonBytes, type ProtocolError, isProtocolError, tryEncodeMessage } from './protocol.js';
import type { Stats } from './stats.js';

export type PublishRefused = Refused<PublishRejectReason>;

export interface PublishBody {
  readonly channel: string;
  readonly data: unknown;
  /** The data as the client sent it (protocol.ts parseCommand, parsePublishBody): copied, not re-encoded. */
  readonly raw?: JsonBytes;
}

export interface PublishContext {
  readonly bus: Bus;
  readonly stats: Stats;
  readonly maxMessageBytes: number;
}

/** What the bus made of an accepted publish: null once it has taken the message. */
export type Published = Promise<PublishRefused | null>;

/** The refusal for a body the parser rejected (its code names what was wrong). */
function invalid(error: ProtocolError): Refusal<PublishRejectReason> {
  if (error.error === ErrorCode.InvalidJson) return Refusal.InvalidJson;
  if (error.error === ErrorCode.InvalidChannel) return Refusal.InvalidChannel;
  return Refusal.InvalidMessage;
}

/**
 * One per transport (source). A publish the bus took is answered on the caller's receipt, through
 * settled() (which counts it), so a publish allocates no Promise or closure here.
 */
export class PublishPipeline {
  constructor(
    private readonly ctx: PublishContext,
    private readonly source: PublishSource,
  ) {}

  /**
   * A refusal decided before the bus or by the bus at once (counted), or null: handed to the
   * bus, which calls receipt.settled(token, err) in a later turn; the receipt passes err to
   * settled(). `busy`: the caller's own cap on waiting commands is reached; checked after the
   * message itself, as the cheap checks tell the client more.
   */
  publish<T>(grant: Grant, body: PublishBody | ProtocolError, busy: boolean, receipt: PublishReceipt<T>, token: T): PublishRefused | null {
    if (isProtocolError(body)) return this.refuse(invalid(body), body.message);
    if (!grant.publish.allows(body.channel)) return this.refuse(Refusal.PublishForbidden);
    const payload = tryEncodeMessage(body.channel, body.data, body.raw);
    if (isProtocolError(payload)) return this.refuse(invalid(payload), payload.message);
    if (payload.length > this.ctx.maxMessageBytes) return this.refuse(Refusal.MessageTooLarge);
    if (busy) return this.refuse(Refusal.TooManyPending);
    const refusedNow = this.ctx.bus.publish(body.channel, payload, receipt, token);
    return refusedNow === null ? null : this.settled(refusedNow);
  }

  /** The same, for a caller that awaits the outcome (POST /publish): one Promise per publish. */
  publishAwaited(grant: Grant, body: PublishBody | ProtocolError, busy = false): PublishRefused | Published {
    let answer!: (refused: PublishRefused | null) => void;
    const published = new Promise<PublishRefused | null>((resolve) => {
      answer = resolve;
    });
    const refused = this.publish(grant, body, busy, this.awaited, answer);
    return refused ?? published;
  }

  /** Counts what the bus made of a publish handed to it: null when taken, else the refusal to tell. */
  settled(err: BusUnavailableError | null): PublishRefused | null {
    if (err === null) {
      this.ctx.stats.publishesAccepted[this.source]++;
      return null;
    }
    // Chosen by err.sent, never by the text: sent-but-unconfirmed may still be delivered.
    return this.refuse(err.sent ? Refusal.BusUnconfirmed : Refusal.BusUnavailable, err.message);
  }

  /** Counts a refusal decided by the transport itself (an oversized body, missing credentials, a foreign origin). */
  refuse(refusal: Refusal<PublishRejectReason>, detail?: string): PublishRefused {
    this.ctx.stats.publishesRejected[this.source][refusal.reason]++;
    return detail === undefined ? { refusal } : { refusal, detail };
  }

  private readonly awaited: PublishReceipt<(refused: PublishRefused | null) => void> = {
    settled: (answer, err) => answer(this.settled(err)),
  };
}

export function isPending(result: PublishRefused | Published): result is Published {
  return result instanceof Promise;
}

// The one publish pipeline, for the WebSocket `publish` and POST /publish alike: validate,
// permission, encode, size, the caller's capacity, bus publish, counting. Each caller only maps
// the outcome to its transport (ack or error frame; HTTP status).
import type { Grant } from './auth.js';
import { type Bus, BusUnavailableError } from './bus/bus.js';
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

/** One per transport (source); its bus handlers are made once, so a publish allocates no closure here. */
export class PublishPipeline {
  constructor(
    private readonly ctx: PublishContext,
    private readonly source: PublishSource,
  ) {}

  /**
   * A refusal decided before the bus (counted), or the bus's answer. `busy`: the caller's own
   * cap on waiting commands is reached; checked after the message itself, as the cheap checks
   * tell the client more.
   */
  publish(grant: Grant, body: PublishBody | ProtocolError, busy = false): PublishRefused | Published {
    if (isProtocolError(body)) return this.refuse(invalid(body), body.message);
    if (!grant.publish.allows(body.channel)) return this.refuse(Refusal.PublishForbidden);
    const payload = tryEncodeMessage(body.channel, body.data, body.raw);
    if (isProtocolError(payload)) return this.refuse(invalid(payload), payload.message);
    if (payload.length > this.ctx.maxMessageBytes) return this.refuse(Refusal.MessageTooLarge);
    if (busy) return this.refuse(Refusal.TooManyPending);
    return this.ctx.bus.publish(body.channel, payload).then(this.accepted, this.failed);
  }

  /** Counts a refusal decided by the transport itself (an oversized body, missing credentials, a foreign origin). */
  refuse(refusal: Refusal<PublishRejectReason>, detail?: string): PublishRefused {
    this.ctx.stats.publishesRejected[this.source][refusal.reason]++;
    return detail === undefined ? { refusal } : { refusal, detail };
  }

  private readonly accepted = (): null => {
    this.ctx.stats.publishesAccepted[this.source]++;
    return null;
  };

  /** Chosen by err.sent, never by the text: sent-but-unconfirmed may still be delivered. */
  private readonly failed = (err: unknown): PublishRefused => {
    const unconfirmed = err instanceof BusUnavailableError && err.sent;
    return this.refuse(unconfirmed ? Refusal.BusUnconfirmed : Refusal.BusUnavailable, (err as Error).message);
  };
}

export function isPending(result: PublishRefused | Published): result is Published {
  return result instanceof Promise;
}

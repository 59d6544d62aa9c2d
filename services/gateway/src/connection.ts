// What one connected client may do: subscribe (with `since`: recover what it missed), unsubscribe,
// publish, ping, within its token's channel patterns and its rate limit. Every bad input gets an error frame and the connection stays open;
// ws itself closes on framing faults (1002, 1007, 1009); sustained rate abuse closes with 1008 and
// an expired token with 4001.
import type { Logger } from 'pino';
import type { Grant } from './auth.js';
import type { Bus, BusUnavailableError, PublishReceipt } from './bus/bus.js';
import type { Client } from './client.js';
import { Disconnect, ErrorCode, HistoryReadPurpose, RecoveryResult, Refusal, type Refused } from './codes.js';
import type { ExpirySchedule } from './expiry.js';
import { textFrame } from './frame.js';
import type { Hub } from './hub.js';
import {
  type Command,
  type ProtocolError,
  type RequestId,
  encodeAck,
  encodeError,
  isProtocolError,
  parseCommand,
} from './protocol.js';
import type { PublishBody, PublishPipeline } from './publish.js';
import { TokenBucket, Verdict } from './ratelimit.js';
import { ChannelRecovery, type RecoveryLimits } from './recovery.js';
import type { Stats } from './stats.js';

/**
 * Commands one connection may have waiting on the bus (publishes, subscribes with an id).
 * Without a cap, a client could pile up promises without bound while Redis is slow or down.
 */
export const MAX_PENDING_PER_CLIENT = 1024;

export interface ConnectionContext {
  readonly hub: Hub;
  readonly bus: Bus;
  readonly stats: Stats;
  readonly log: Logger;
  readonly maxMessageBytes: number;
  readonly rateLimitPerSec: number;
  readonly rateLimitBurst: number;
  /** The WebSocket source's publish pipeline (publish.ts). */
  readonly wsPublishes: PublishPipeline;
  /** RECOVERY_MAX_MESSAGES, and the live messages one recovery may buffer during its read. */
  readonly recovery: RecoveryLimits;
  /** The gateway's one token-expiry schedule: it closes a client with 4001 at its token's `exp`. */
  readonly expiries: ExpirySchedule<Client>;
}

type Subscribe = Extract<Command, { op: 'subscribe' }>;

/**
 * Token expiries are bucketed by this (expiry.ts): a connection is closed with 4001 at most this
 * long after its token's `exp`, never before; a JWT's `exp` is whole seconds, so in practice at it.
 */
export const EXPIRY_RESOLUTION_MS = 1000;

export function attachConnection(ctx: ConnectionContext, client: Client, grant: Grant): void {
  const { ws } = client;
  const bucket = new TokenBucket(ctx.rateLimitPerSec, ctx.rateLimitBurst, performance.now());
  /** False when the frame must be dropped: over the rate limit (told once per run, closed on abuse). */
  const admit = (): boolean => {
    const verdict = bucket.take(performance.now());
    if (verdict === Verdict.Ok) return true;
    ctx.stats.rateLimited++;
    if (verdict === Verdict.Refused) {
      sendError(ctx, client, ErrorCode.RateLimited, `over ${ctx.rateLimitPerSec} frames/s; frames are being ignored`);
    } else if (verdict === Verdict.Abuse) {
      ctx.hub.disconnect(client, Disconnect.RateLimited);
    }
    return false;
  };

  // Infinity (auth off) is never scheduled.
  ctx.expiries.add(client, grant.expiresAt);

  const publishes = new PublishReplies(ctx, client);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    client.markAlive();
    if (!admit()) return;
    if (isBinary) {
      sendError(ctx, client, ErrorCode.BinaryNotSupported, 'send JSON text frames');
      return;
    }
    try {
      handleCommand(ctx, client, grant, data, publishes);
    } catch (err) {
      // A bug, not bad input (that gets an error frame): close this client, keep serving the rest.
      ctx.log.error({ client: client.id, err }, 'command handler failed');
      ctx.hub.disconnect(client, Disconnect.InternalError);
    }
  });
  ws.on('pong', () => {
    client.markAlive();
    // Unsolicited pongs cost a token too, so a pong flood meets the same limit and 1008.
    admit();
  });
  ws.on('ping', (data: Buffer) => {
    client.markAlive();
    if (admit()) client.pong(data);
  });
  ws.on('error', (err: Error & { code?: string }) => {
    // ws has already chosen the close code (1009 for MAX_MESSAGE_BYTES, 1007 for bad UTF-8, ...).
    ctx.log.debug({ client: client.id, err, code: err.code }, 'websocket error');
  });
  ws.on('close', () => {
    ctx.expiries.delete(client);
    ctx.hub.unregister(client);
  });
}

function handleCommand(ctx: ConnectionContext, client: Client, grant: Grant, frame: Buffer, publishes: PublishReplies): void {
  const command = parseCommand(frame);
  if (isProtocolError(command)) {
    // A malformed publish is still a publish: the pipeline counts it.
    if (command.op === 'publish') publish(ctx, client, grant, command, command.id, publishes);
    else sendError(ctx, client, command.error, command.message, command.id);
    return;
  }
  switch (command.op) {
    case 'subscribe':
      if (!grant.subscribe.allows(command.channel)) {
        sendRefusal(ctx, client, { refusal: Refusal.SubscribeForbidden }, command.id);
        return;
      }
      subscribe(ctx, client, command);
      return;
    case 'unsubscribe':
      ctx.hub.unsubscribe(client, command.channel);
      if (command.id !== undefined) client.reply(encodeAck(command.id));
      return;
    case 'publish':
      publish(ctx, client, grant, command, command.id, publishes);
      return;
    case 'ping':
      if (command.id !== undefined) client.reply(encodeAck(command.id));
      return;
  }
}

function subscribe(ctx: ConnectionContext, client: Client, command: Subscribe): void {
  const { id, since } = command;
  if (id !== undefined && client.pendingCommands >= MAX_PENDING_PER_CLIENT) {
    sendRefusal(ctx, client, { refusal: Refusal.TooManyPending }, id);
    return;
  }
  const history = ctx.bus.history;
  const recovery = since !== undefined && history !== null ? new ChannelRecovery(since, ctx.recovery) : undefined;
  const result = ctx.hub.subscribe(client, command.channel, recovery);
  if (result === 'limit') {
    sendError(ctx, client, ErrorCode.TooManyChannels, 'subscription limit reached (MAX_CHANNELS_PER_CLIENT)', id);
    return;
  }
  if (since !== undefined && history === null) ctx.stats.recoveries[RecoveryResult.NoHistory]++;
  const recovering = result === 'subscribed' ? recovery : undefined;
  if (id === undefined && recovering === undefined) return;
  client.commandStarted();
  acknowledge(ctx, client, command, recovering).then(
    () => client.commandSettled(),
    (err: Error) => {
      client.commandSettled();
      if (recovering === undefined) return; // the bus closed while waiting (shutdown): no reply, as without history
      // The recovery's read failed (Redis down or slow): the subscribe fails as a whole, never a
      // partial replay, and the client may send it again.
      ctx.hub.abandonRecovery(client, command.channel, recovering);
      if (id !== undefined) sendRefusal(ctx, client, { refusal: Refusal.BusUnavailable, detail: `history could not be read: ${err.message}` }, id);
    },
  );
}

/**
 * The ack of a subscribe, once messages on the channel reach this gateway (after a reconnect,
 * once resubscribed): with history the channel's position, read after that, so every message
 * after it is delivered. A recovering subscribe hands its replay to the client right after the
 * ack, in the same turn; the client paces it out behind its send queue. Nothing is sent when the client left the channel meanwhile.
 */
async function acknowledge(ctx: ConnectionContext, client: Client, command: Subscribe, recovery: ChannelRecovery | undefined): Promise<void> {
  const { channel, id, since } = command;
  await ctx.hub.whenLive(channel);
  const history = ctx.bus.history;
  // A `since` that is not recovered (history off, or already subscribed) says so: recovered false.
  const asked = since === undefined ? undefined : false;
  if (recovery === undefined) {
    if (id === undefined) return;
    const position = history === null ? null : await history.top(channel, HistoryReadPurpose.Top).catch(noPosition);
    if (position !== null) ctx.hub.acked(client, channel, position);
    client.reply(encodeAck(id, position, asked));
    return;
  }
  const read = await history!.since(channel, recovery.since.offset, recovery.since.epoch, ctx.recovery.maxMessages, HistoryReadPurpose.Recovery);
  const result = ctx.hub.resolveRecovery(client, channel, recovery, read);
  if (result === null) return;
  if (id !== undefined) client.reply(encodeAck(id, result.position, result.outcome.recovered));
  // Paced: a replay larger than the send queue waits behind it instead of overflowing it.
  if (result.messages.length > 0) client.replay(result.messages.map((m) => textFrame(m.bytes)));
}

/**
 * A subscribe acked once live whose position could not be read (the publisher connection is
 * still reconnecting): the subscription stands and is acked without a position, as with history
 * off; its messages carry theirs.
 */
const noPosition = (): null => null;

function publish(
  ctx: ConnectionContext,
  client: Client,
  grant: Grant,
  body: PublishBody | ProtocolError,
  id: RequestId | undefined,
  publishes: PublishReplies,
): void {
  const refused = ctx.wsPublishes.publish(grant, body, client.pendingCommands >= MAX_PENDING_PER_CLIENT, publishes, id);
  if (refused !== null) {
    sendRefusal(ctx, client, refused, id);
    return;
  }
  // The bus settles it in a later turn, on this connection's receipt, with the id as the token.
  client.commandStarted();
}

/** One per connection: the bus's answer to each of its publishes becomes an ack or an error frame, without a Promise or closure per publish. */
class PublishReplies implements PublishReceipt<RequestId | undefined> {
  constructor(
    private readonly ctx: ConnectionContext,
    private readonly client: Client,
  ) {}

  settled(id: RequestId | undefined, err: BusUnavailableError | null): void {
    this.client.commandSettled();
    const refused = this.ctx.wsPublishes.settled(err);
    if (refused !== null) sendRefusal(this.ctx, this.client, refused, id);
    else if (id !== undefined) this.client.reply(encodeAck(id));
  }
}

function sendRefusal(ctx: ConnectionContext, client: Client, { refusal, detail }: Refused, id?: RequestId): void {
  sendError(ctx, client, refusal.code, detail ?? refusal.message, id);
}

function sendError(ctx: ConnectionContext, client: Client, code: ErrorCode, message: string, id?: RequestId): void {
  ctx.stats.errors[code]++;
  client.reply(encodeError(code, message, id));
}

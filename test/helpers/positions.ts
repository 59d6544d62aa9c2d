// Positions on the wire (issue 10) as the recovery tests read them: message, ack and lost frames
// with their offset and epoch, a subscribe with `since`, and the one check every recovery test
// makes: a channel's offsets after a position follow it one by one, in one epoch, each once.
import type { ServerFrame, TestClient } from './client.js';

export interface Position {
  readonly offset: number;
  readonly epoch: string;
}

/** A server frame with the position fields of issue 10 (absent where the frame has none). */
export interface PositionedFrame extends ServerFrame {
  readonly offset?: number;
  readonly epoch?: string;
  readonly recovered?: boolean;
}

/** The subscribe ack: the channel's position, and with `since` whether it was recovered. */
export interface Ack extends Position {
  readonly recovered?: boolean;
}

/** A well-formed epoch no gateway can have drawn (12 characters of base64url, like a real one). */
export const FOREIGN_EPOCH = 'NotAnEpoch00';

export function isPosition(f: PositionedFrame): f is PositionedFrame & Position {
  return Number.isSafeInteger(f.offset) && typeof f.epoch === 'string';
}

/** The message frames of a channel, in arrival order. */
export function messagesOf(frames: readonly ServerFrame[], channel: string): (PositionedFrame & Position)[] {
  const out: (PositionedFrame & Position)[] = [];
  for (const f of frames as readonly PositionedFrame[]) {
    if (f.op !== 'message' || f.channel !== channel) continue;
    if (!isPosition(f)) throw new Error(`a message on ${channel} without a position: ${JSON.stringify(f)}`);
    out.push(f);
  }
  return out;
}

/** Subscribes with a fresh id (and `since`), and resolves with the ack; an error frame throws. */
export async function subscribe(client: TestClient, channel: string, since?: Position, timeoutMs = 10_000): Promise<Ack & { frame: ServerFrame }> {
  const reply = (await client.request(since === undefined ? { op: 'subscribe', channel } : { op: 'subscribe', channel, since }, timeoutMs)) as PositionedFrame;
  if (reply.op !== 'ack') throw new Error(`subscribe to ${channel} refused: ${JSON.stringify(reply)}`);
  if (!isPosition(reply)) throw new Error(`the subscribe ack for ${channel} has no position: ${JSON.stringify(reply)}`);
  return { offset: reply.offset, epoch: reply.epoch, recovered: reply.recovered, frame: reply };
}

/**
 * What is wrong with these messages as the continuation of `from`: each offset must be the
 * previous one + 1 (no gap, no duplicate, no reordering), all in from's epoch. Empty when right.
 */
export function sequenceProblems(messages: readonly (PositionedFrame & Position)[], from: Position, what: string): string[] {
  const problems: string[] = [];
  let expected = from.offset + 1;
  for (const m of messages) {
    if (m.epoch !== from.epoch) problems.push(`${what}: offset ${m.offset} in epoch ${m.epoch}, expected epoch ${from.epoch}`);
    if (m.offset !== expected) problems.push(`${what}: offset ${m.offset} where ${expected} was next`);
    expected = m.offset + 1;
    if (problems.length > 10) break;
  }
  return problems;
}

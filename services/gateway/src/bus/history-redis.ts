// Channel history on Redis: one Lua script per publish (position, stream, expiry and pub/sub in
// one atomic step) and one per read (top and range at one instant). Both are loaded once per
// connection through ioredis defineCommand, so each call is an EVALSHA (ioredis falls back to
// EVAL once after a Redis restart emptied the script cache).
//
// Keys of channel C, in C's hash tag so that on Redis Cluster both live in C's slot (the
// pub/sub channel passed to the script must then be tagged the same way, for SPUBLISH):
//   <prefix>{C}:meta    hash  e: epoch, o: top offset
//   <prefix>{C}:stream  stream of entries with ID <offset>-0 and one field d: the client bytes
import type { Cluster, Redis } from 'ioredis';
import { type HistoryRead, type HistoryReader, type StoredMessage, isComplete } from './history-read.js';
import { EpochSource, type Position } from './position.js';

export interface RedisHistoryOptions {
  /** REDIS_PREFIX: the keys are <prefix>{<channel>}:meta and :stream. */
  readonly prefix: string;
  /** HISTORY_SIZE: messages readable per channel (the stream trims approximately, reads see exactly the last size). */
  readonly size: number;
  /** HISTORY_TTL_S: both keys expire this long after the channel's last publish. */
  readonly ttlS: number;
  /** PUBLISH, or SPUBLISH on Redis Cluster (the script runs on the channel's master). */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
}

// The position of a channel, made when missing. History counts as lost (a new epoch, offsets
// from 1 again, the stale stream deleted so XADD can restart at 1-0) when the meta hash is gone,
// or when it says messages were published but the stream is gone (expired or evicted apart),
// or the other way round: an offset is never reused for a different message under one epoch.
// A read creates the position too, so the epoch a subscriber is acked with is the one its later
// recovery finds; a created position lives HISTORY_TTL_S unless a publish extends it.
const POSITION_LUA = `
local function position(meta, stream, candidate, ttl)
  local state = redis.call('HMGET', meta, 'e', 'o')
  local epoch = state[1]
  local top = tonumber(state[2] or '0')
  local stored = redis.call('EXISTS', stream) == 1
  if epoch == false or (top > 0) ~= stored then
    if stored then redis.call('DEL', stream) end
    epoch = candidate
    top = 0
    redis.call('HSET', meta, 'e', epoch, 'o', 0)
    redis.call('EXPIRE', meta, ttl)
  end
  return epoch, top
end
`;

// One message: its offset, the stream entry, expiry, and the pub/sub message (position header + body).
const STORE_LUA = `${POSITION_LUA}
local function store(meta, stream, head, maxlen, ttl, candidate, channel, command)
  local epoch, top = position(meta, stream, candidate, ttl)
  local o = string.format('%d', top + 1)
  redis.call('HSET', meta, 'o', o)
  local body = head .. ',"offset":' .. o .. ',"epoch":"' .. epoch .. '"}'
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, o .. '-0', 'd', body)
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', stream, ttl)
  redis.call(command, channel, string.char(253, 1, #o, #epoch) .. o .. epoch .. body)
  return top + 1, epoch
end
`;

/**
 * KEYS meta, stream; ARGV head, maxlen, ttl, epoch candidate, pub/sub channel, publish command.
 * MAXLEN ~ trims whole stream nodes only (measured 1.2-1.6 us per XADD against 3-3.7 us exact,
 * see docs/history-design.md); the read script hides what lies beyond HISTORY_SIZE.
 */
export const PUBLISH_LUA = `${STORE_LUA}
local o, epoch = store(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return {o, epoch}
`;

/**
 * A turn's publishes in one call (publish-batch.ts), each exactly as PUBLISH_LUA, in order.
 * KEYS meta1, stream1, meta2, stream2 ...; ARGV maxlen, ttl, publish command, then per message
 * head, epoch candidate, pub/sub channel. Returns {offset1, epoch1, offset2, epoch2 ...}.
 */
export const PUBLISH_BATCH_LUA = `${STORE_LUA}
local out = {}
for i = 1, #KEYS / 2 do
  local a = 3 * i + 1
  out[2 * i - 1], out[2 * i] = store(KEYS[2 * i - 1], KEYS[2 * i], ARGV[a], ARGV[1], ARGV[2], ARGV[a + 1], ARGV[a + 2], ARGV[3])
end
return out
`;

/**
 * KEYS meta, stream; ARGV after, epoch ('' for any), limit, epoch candidate, ttl, size.
 * Returns {epoch, top, offset1, bytes1, offset2, bytes2 ...}: no entries when the asked epoch is
 * another (its offsets name other messages) or nothing is after the asked offset. Only the last
 * `size` offsets are visible: the approximate trim keeps a few more, and exposing them would
 * make recovery depend on stream node boundaries instead of HISTORY_SIZE.
 */
export const READ_LUA = `${POSITION_LUA}
local epoch, top = position(KEYS[1], KEYS[2], ARGV[4], ARGV[5])
local after = tonumber(ARGV[1])
local limit = tonumber(ARGV[3])
local out = {epoch, top}
if (ARGV[2] ~= '' and ARGV[2] ~= epoch) or limit <= 0 or after >= top then return out end
local first = math.max(after + 1, top - tonumber(ARGV[6]) + 1)
local entries = redis.call('XRANGE', KEYS[2], string.format('%d', first) .. '-0', '+', 'COUNT', limit)
for i = 1, #entries do
  local id = entries[i][1]
  out[#out + 1] = tonumber(string.sub(id, 1, -3))
  out[#out + 1] = entries[i][2][2]
end
return out
`;

/**
 * KEYS meta, stream; ARGV observed epoch, observed offset, epoch candidate, ttl.
 * A gateway heard the channel up to the observed position, but its history now stands lower under
 * the same epoch: a Redis Cluster failover promoted a replica that missed the last writes
 * (replication is asynchronous). Publishing on from here would reuse those offsets for other
 * messages, so the history counts as lost, as in the position rule: a new epoch from offset 0, the
 * stream deleted (its stored frames carry the old epoch, so they cannot be served under the new
 * one). Otherwise nothing changes. Returns {top, epoch, top found}: the offsets the failover took
 * back are observed - top found. The meta hash is the "last known top";
 * a gateway's observation is what can contradict it.
 */
export const FENCE_LUA = `${POSITION_LUA}
local epoch, top = position(KEYS[1], KEYS[2], ARGV[3], ARGV[4])
local found = top
if epoch == ARGV[1] and top < tonumber(ARGV[2]) then
  epoch = ARGV[3]
  top = 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return {top, epoch, found}
`;

/** What a fence answers: the channel's position now, and the top it found before acting. */
export interface Fenced extends Position {
  readonly found: number;
}

const PUBLISH_COMMAND = 'hubcastHistoryPublish';
const PUBLISH_BATCH_COMMAND = 'hubcastHistoryPublishBatch';
const FENCE_COMMAND = 'hubcastHistoryFence';
const READ_COMMAND = 'hubcastHistoryRead';

/** The script commands defineCommand adds (named PUBLISH_COMMAND, READ_COMMAND); ioredis's types do not know them. */
interface Scripted {
  hubcastHistoryPublish(
    meta: string, stream: string, head: Buffer, maxlen: number, ttl: number, candidate: string, pubsub: string, command: string,
  ): Promise<[number, string]>;
  /** KEYS and ARGV of PUBLISH_BATCH_LUA, flat (numberOfKeys given first, as defineCommand takes for a dynamic count). */
  hubcastHistoryPublishBatch(keyCount: number, ...args: (string | Buffer | number)[]): Promise<(number | string)[]>;
  hubcastHistoryFence(meta: string, stream: string, epoch: string, offset: number, candidate: string, ttl: number): Promise<[number, string, number]>;
  /** defineCommand's Buffer twin: bulk replies as Buffers, so stored bytes stay binary-exact. */
  hubcastHistoryReadBuffer(
    meta: string, stream: string, after: number, epoch: string, limit: number, candidate: string, ttl: number, size: number,
  ): Promise<(Buffer | number)[]>;
}

export function historyKeys(prefix: string, channel: string): { meta: string; stream: string } {
  const tag = `${prefix}{${channel}}`;
  return { meta: `${tag}:meta`, stream: `${tag}:stream` };
}

export class RedisHistory implements HistoryReader {
  private readonly scripts: Scripted;
  private readonly epochs = new EpochSource();

  /**
   * redis: a command connection (the bus's publisher), or a Cluster (every script names the
   * channel's keys, so it runs on the channel's master); the scripts are defined on it once.
   */
  constructor(
    redis: Redis | Cluster,
    private readonly options: RedisHistoryOptions,
  ) {
    redis.defineCommand(PUBLISH_COMMAND, { numberOfKeys: 2, lua: PUBLISH_LUA });
    // No numberOfKeys: the key count is the call's first argument (two per message).
    redis.defineCommand(PUBLISH_BATCH_COMMAND, { lua: PUBLISH_BATCH_LUA });
    redis.defineCommand(READ_COMMAND, { numberOfKeys: 2, lua: READ_LUA });
    redis.defineCommand(FENCE_COMMAND, { numberOfKeys: 2, lua: FENCE_LUA });
    this.scripts = redis as unknown as Scripted;
  }

  /** Stores and publishes one message; head is its client frame without the closing brace. */
  async publish(channel: string, pubsubChannel: string, head: Buffer): Promise<Position> {
    const { meta, stream } = historyKeys(this.options.prefix, channel);
    const { size, ttlS, publishCommand } = this.options;
    const [offset, epoch] = await this.scripts.hubcastHistoryPublish(
      meta, stream, head, size, ttlS, this.epochs.next(), pubsubChannel, publishCommand,
    );
    return { offset, epoch };
  }

  /**
   * Stores and publishes messages in one script call, in order; heads[i] belongs to channels[i].
   * Each goes out on its channel's hash tag (<prefix>{C}), the name the Redis buses subscribe to
   * with history on. Resolves with the offsets and epochs, flat (offset1, epoch1, ...).
   */
  publishBatch(channels: readonly string[], heads: readonly Buffer[]): Promise<(number | string)[]> {
    const { prefix, size, ttlS, publishCommand } = this.options;
    const n = channels.length;
    const args: (string | Buffer | number)[] = new Array(2 * n + 3 + 3 * n);
    args[2 * n] = size;
    args[2 * n + 1] = ttlS;
    args[2 * n + 2] = publishCommand;
    for (let i = 0; i < n; i++) {
      const tag = `${prefix}{${channels[i]!}}`;
      args[2 * i] = `${tag}:meta`;
      args[2 * i + 1] = `${tag}:stream`;
      const a = 2 * n + 3 + 3 * i;
      args[a] = heads[i]!;
      args[a + 1] = this.epochs.next();
      args[a + 2] = tag;
    }
    return this.scripts.hubcastHistoryPublishBatch(2 * n, ...args);
  }

  async top(channel: string): Promise<Position> {
    const read = await this.read(channel, 0, null, 0);
    return { offset: read.top, epoch: read.epoch };
  }

  /** The channel's position, moved to a new epoch first if it stands below observed under observed's epoch (FENCE_LUA). */
  async fence(channel: string, observed: Position): Promise<Fenced> {
    const { meta, stream } = historyKeys(this.options.prefix, channel);
    const [offset, epoch, found] = await this.scripts.hubcastHistoryFence(meta, stream, observed.epoch, observed.offset, this.epochs.next(), this.options.ttlS);
    return { offset, epoch, found };
  }

  since(channel: string, offset: number, epoch: string | null, limit: number): Promise<HistoryRead> {
    return this.read(channel, offset, epoch, limit);
  }

  private async read(channel: string, after: number, epoch: string | null, limit: number): Promise<HistoryRead> {
    const { meta, stream } = historyKeys(this.options.prefix, channel);
    const reply = await this.scripts.hubcastHistoryReadBuffer(
      meta, stream, after, epoch ?? '', limit, this.epochs.next(), this.options.ttlS, this.options.size,
    );
    const current = (reply[0] as Buffer).toString('latin1');
    const top = reply[1] as number;
    const messages: StoredMessage[] = [];
    for (let i = 2; i + 1 < reply.length; i += 2) {
      messages.push({ offset: reply[i] as number, bytes: reply[i + 1] as Buffer });
    }
    const read = { epoch: current, top, messages };
    return { ...read, complete: isComplete(after, epoch, read, limit) };
  }
}

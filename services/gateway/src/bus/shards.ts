// Sharded pub/sub on Redis Cluster: the pure pieces the cluster bus is built from.
//
// On Redis Cluster a channel lives in a hash slot, as a key does, and SSUBSCRIBE/SPUBLISH go to the
// master serving that slot (plain PUBLISH is copied to every node and does not scale). So:
// - keySlot() computes a channel's slot exactly as Redis does (CRC16 of the hash tag);
// - groupBySlot() splits a subscribe into commands of one slot each (Redis refuses a multi-slot
//   SSUBSCRIBE with CROSSSLOT);
// - ShardReadiness says, per master, whether every channel wanted on it is confirmed, so readiness
//   can be "every shard holding our channels is subscribed" and a failover costs one shard only;
// - FAILOVER_REFRESH names when to re-read the slot map after a master pushed `sunsubscribe`
//   (ioredis then never resubscribes by itself), and isSubscriptionLost() recognises that event;
// - ReconnectBound spaces the reconnect attempts to a dead master (ioredis retries it in a loop).
// Figures behind each: docs/redis-cluster-notes.md.

/** Hash slots in every Redis Cluster. */
export const SLOTS = 16_384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the one Redis Cluster uses, by table.
const CRC16_TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let crc = i << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  CRC16_TABLE[i] = crc;
}

function crc16(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }

/**
 * The slot of a key or shard channel, as CLUSTER KEYSLOT gives it: when the name holds a hash tag
 * (the bytes between the first `{` and the first `}` after it, if any), only the tag is hashed, so
 * `{news}` and `hist:{news}` share a slot. An empty tag (`{}`) hashes the whole name.
 */
export function keySlot(key: string | Buffer): number {
  const bytes = typeof key === 'string' ? Buffer.from(key) : key;
  const open = bytes.indexOf(OPEN);
  if (open >= 0) {
    const close = bytes.indexOf(CLOSE, open + 1);
    if (close > open + 1) return crc16(bytes, open + 1, close) & (SLOTS - 1);
  }
  return crc16(bytes, 0, bytes.length) & (SLOTS - 1);
}

/** Channels per SSUBSCRIBE, as for SUBSCRIBE when resubscribing a large set. */
export const SUBSCRIBE_BATCH = 1000;

/**
 * Channels split into SSUBSCRIBE commands: each names channels of one slot only (Redis answers
 * CROSSSLOT otherwise) and at most `batch` of them. Groups come in slot order, channels in input order.
 */
export function groupBySlot(channels: Iterable<string>, slotOf: (channel: string) => number = keySlot, batch = SUBSCRIBE_BATCH): string[][] {
  const bySlot = new Map<number, string[]>();
  for (const channel of channels) {
    const slot = slotOf(channel);
    const group = bySlot.get(slot);
    if (group === undefined) bySlot.set(slot, [channel]);
    else group.push(channel);
  }
  const groups: string[][] = [];
  for (const slot of [...bySlot.keys()].sort((a, b) => a - b)) {
    const group = bySlot.get(slot)!;
    for (let i = 0; i < group.length; i += batch) groups.push(group.slice(i, i + batch));
  }
  return groups;
}

/** The shard of a slot: the master serving it ("host:port"), or undefined before the slot map is known. */
export type SlotOwner = (slot: number) => string | undefined;

/** Where channels sit while no master is known for their slot: never ready. */
export const UNKNOWN_SHARD = '?';

interface Wanted {
  readonly slot: number;
  shard: string;
  confirmed: boolean;
}

interface Shard {
  readonly channels: Set<string>;
  unconfirmed: number;
}

/**
 * Per-shard subscription state. A channel is wanted (the hub holds it) and, once its SSUBSCRIBE is
 * confirmed on the master that serves its slot, confirmed. A shard is ready when every channel
 * wanted on it is confirmed; the bus is ready when every shard holding wanted channels is. Losing
 * a shard (its master pushed sunsubscribe, its subscriber connection dropped) or a slot moving to
 * another master makes exactly those channels unconfirmed again, and names them for resubscribing.
 */
export class ShardReadiness {
  private readonly wanted = new Map<string, Wanted>();
  private readonly shards = new Map<string, Shard>();
  private unconfirmed = 0;

  constructor(
    private owner: SlotOwner,
    private readonly slotOf: (channel: string) => number = keySlot,
  ) {}

  /** Every wanted channel is confirmed on its shard (true with none wanted). */
  get ready(): boolean {
    return this.unconfirmed === 0;
  }

  get size(): number {
    return this.wanted.size;
  }

  /** The hub wants the channel: unconfirmed until confirm(). Wanting it again changes nothing. */
  want(channel: string): void {
    if (this.wanted.has(channel)) return;
    const slot = this.slotOf(channel);
    const entry: Wanted = { slot, shard: this.owner(slot) ?? UNKNOWN_SHARD, confirmed: false };
    this.wanted.set(channel, entry);
    this.add(entry.shard, channel);
  }

  drop(channel: string): void {
    const entry = this.wanted.get(channel);
    if (entry === undefined) return;
    this.wanted.delete(channel);
    this.remove(entry, channel);
  }

  /**
   * The channel's SSUBSCRIBE was confirmed by shard (the master it was sent to). A confirmation
   * from a master that no longer serves the slot (a reply that crossed a failover) does not count.
   */
  confirm(channel: string, shard: string): boolean {
    const entry = this.wanted.get(channel);
    if (entry === undefined || entry.confirmed || entry.shard !== shard) return false;
    entry.confirmed = true;
    this.unconfirmed--;
    this.shards.get(shard)!.unconfirmed--;
    return true;
  }

  isConfirmed(channel: string): boolean {
    return this.wanted.get(channel)?.confirmed === true;
  }

  shardOf(channel: string): string | undefined {
    return this.wanted.get(channel)?.shard;
  }

  /** A shard with no wanted channel is ready; UNKNOWN_SHARD with channels never is. */
  isShardReady(shard: string): boolean {
    const s = this.shards.get(shard);
    return s === undefined || s.unconfirmed === 0;
  }

  /** Shards holding wanted channels, each with whether it is ready (for /readyz and per-shard gauges). */
  shardStates(): Map<string, boolean> {
    const states = new Map<string, boolean>();
    for (const [name, s] of this.shards) states.set(name, s.unconfirmed === 0);
    return states;
  }

  /** The shard's subscription is gone: its channels are unconfirmed, and returned to be subscribed again. */
  lose(shard: string): string[] {
    const s = this.shards.get(shard);
    if (s === undefined) return [];
    for (const channel of s.channels) this.unconfirm(this.wanted.get(channel)!);
    return [...s.channels];
  }

  /**
   * The slot map changed: channels whose slot is now served by another master move there,
   * unconfirmed, and are returned (to be subscribed on their new master). The rest keep their state.
   */
  remap(owner: SlotOwner): string[] {
    this.owner = owner;
    const moved: string[] = [];
    for (const [channel, entry] of this.wanted) {
      const shard = owner(entry.slot) ?? UNKNOWN_SHARD;
      if (shard === entry.shard) continue;
      this.remove(entry, channel);
      entry.shard = shard;
      entry.confirmed = false;
      this.add(shard, channel);
      moved.push(channel);
    }
    return moved;
  }

  private add(shard: string, channel: string): void {
    let s = this.shards.get(shard);
    if (s === undefined) {
      s = { channels: new Set(), unconfirmed: 0 };
      this.shards.set(shard, s);
    }
    s.channels.add(channel);
    s.unconfirmed++;
    this.unconfirmed++;
  }

  /** Takes the channel off its shard's books, and the shard with it once empty. */
  private remove(entry: Wanted, channel: string): void {
    const s = this.shards.get(entry.shard)!;
    s.channels.delete(channel);
    if (!entry.confirmed) {
      s.unconfirmed--;
      this.unconfirmed--;
    }
    if (s.channels.size === 0) this.shards.delete(entry.shard);
  }

  private unconfirm(entry: Wanted): void {
    if (!entry.confirmed) return;
    entry.confirmed = false;
    this.unconfirmed++;
    this.shards.get(entry.shard)!.unconfirmed++;
  }
}

/**
 * After a graceful failover the old master pushes `sunsubscribe` for each channel it served.
 * ioredis 5.11 has no command waiting for that reply, reports it as this error on `nodeError`, and
 * never resubscribes: the channel stays dead until the slot map is refreshed.
 */
export function isSubscriptionLost(err: Error): boolean {
  return err.message.includes('Command queue state error') && err.message.includes('sunsubscribe');
}

/**
 * When to refresh the slot map after a subscription was lost, in ms from the event. One refresh at
 * once is not enough: it can read the map from a node that has not yet heard of the promotion,
 * find nothing changed, and leave the channel dead. Retried over about 1.5 s, the map settles; the
 * schedule stops as soon as every shard is ready again.
 */
export const FAILOVER_REFRESH: readonly number[] = [0, 100, 250, 500, 1000, 1500];

/**
 * Runs a refresh at each point of a schedule after trigger(), until settle() or the end. A trigger
 * while one runs starts the schedule over from now: a second failover needs its own retries.
 */
export class RefreshSchedule {
  private timers: NodeJS.Timeout[] = [];
  private runs = 0;

  constructor(
    private readonly refresh: () => void,
    private readonly delays: readonly number[] = FAILOVER_REFRESH,
  ) {}

  get running(): boolean {
    return this.timers.length > 0;
  }

  /** Refreshes run so far (for a metric or a log line). */
  get refreshes(): number {
    return this.runs;
  }

  trigger(): void {
    this.settle();
    let left = this.delays.length;
    for (const delay of this.delays) {
      const timer = setTimeout(() => {
        this.runs++;
        if (--left === 0) this.timers = [];
        this.refresh();
      }, delay);
      timer.unref();
      this.timers.push(timer);
    }
  }

  /** Every shard is ready again: the remaining refreshes are not needed. */
  settle(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
  }
}

export interface ReconnectBoundOptions {
  /** The gap after the first failed attempt. */
  readonly baseMs: number;
  /** The longest gap: a dead master is still tried this often, so a promoted replica is found. */
  readonly maxMs: number;
}

/**
 * Ioredis retries a dead master as fast as the connect fails (a refused connect on loopback
 * fails at once) until a replica is promoted. The bound: after a failed attempt the next one
 * waits baseMs, doubling per failure up to maxMs; one that succeeds resets it. An attempt asked
 * for during the wait is merged into the one at its end (delay() says when).
 */
export const RECONNECT_BOUND: ReconnectBoundOptions = { baseMs: 100, maxMs: 1000 };

export class ReconnectBound {
  private failures = 0;
  /** When the next attempt may run (ms, the caller's clock). */
  private notBefore = 0;

  constructor(private readonly options: ReconnectBoundOptions = RECONNECT_BOUND) {}

  /** How long from now an attempt asked for now must wait (0: run it now). */
  delay(now: number): number {
    return Math.max(0, this.notBefore - now);
  }

  /** An attempt ran at now and failed: the next waits longer. */
  failed(now: number): void {
    this.failures++;
    this.notBefore = now + this.gap();
  }

  /** An attempt succeeded: the next failure starts again at baseMs. */
  succeeded(): void {
    this.failures = 0;
    this.notBefore = 0;
  }

  /** The current gap after a failure, in ms. */
  gap(): number {
    if (this.failures === 0) return 0;
    return Math.min(this.options.baseMs * 2 ** (this.failures - 1), this.options.maxMs);
  }
}

/**
 * A name for each master's own probe channel: base + '.' + n with the smallest n whose slot
 * (slotOf the name) that master serves, so a probe published there travels through that master.
 * Undefined when the master serves no slot.
 */
export function nameOnShard(base: string, shard: string, owner: SlotOwner, slotOf: (name: string) => number = keySlot): string | undefined {
  let serves = false;
  for (let slot = 0; slot < SLOTS && !serves; slot++) serves = owner(slot) === shard;
  if (!serves) return undefined;
  for (let n = 0; ; n++) {
    const name = `${base}.${n}`;
    if (owner(slotOf(name)) === shard) return name;
  }
}

/** The masters serving at least one slot, in slot order of their first slot. */
export function mastersOf(owner: SlotOwner): string[] {
  const seen = new Set<string>();
  for (let slot = 0; slot < SLOTS; slot++) {
    const shard = owner(slot);
    if (shard !== undefined) seen.add(shard);
  }
  return [...seen];
}

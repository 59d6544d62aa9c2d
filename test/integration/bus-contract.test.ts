// One contract, every bus: the same cases run against the in-process MemoryBus, against
// RedisBus on a real redis-server and against ClusterBus on a local six-node Redis Cluster (each
// case on its own key prefix). A case is one entry of CASES;
// one that needs what a bus cannot do (the memory bus is never down) is skipped with the reason.
import assert from 'node:assert/strict';
import { type TestContext, after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { type Bus, type BusListener, BusUnavailableError, type PublishReceipt } from '../../services/gateway/src/bus/bus.js';
import { MemoryBus } from '../../services/gateway/src/bus/memory.js';
import { type Position, isValidEpoch } from '../../services/gateway/src/bus/position.js';
import { RedisBus } from '../../services/gateway/src/bus/redis.js';
import { ClusterBus } from '../../services/gateway/src/bus/redis-cluster.js';
import { type RedisCluster, startRedisCluster } from '../../tools/kit/src/redis-cluster.js';
import { HistoryReadPurpose } from '../../services/gateway/src/codes.js';
import { ChannelRecovery, Recovery, type RecoveryResult } from '../../services/gateway/src/recovery.js';
import { Stats } from '../../services/gateway/src/stats.js';
import { publishOn } from '../helpers/bus.js';
import { type RedisHandle, startRedis, uniquePrefix } from '../helpers/redis.js';
import { freePort, within } from '../helpers/wait.js';

/** Everything a bus told its listener, with a way to await the next thing. */
class Recorder implements BusListener {
  readonly received: { channel: string; payload: Buffer }[] = [];
  /** With history on: each message's position, in arrival order. */
  readonly positions: { channel: string; offset: number; epoch: string }[] = [];
  readonly losses: { channel: string; offset: number; epoch: string }[] = [];
  readonly states: boolean[] = [];
  private waiters: (() => void)[] = [];

  message(channel: string, payload: Buffer, position?: Position): void {
    this.received.push({ channel, payload: Buffer.from(payload) });
    if (position !== undefined) this.positions.push({ channel, offset: position.offset, epoch: position.epoch });
    this.wake();
  }

  lost(channel: string, position: Position): void {
    this.losses.push({ channel, offset: position.offset, epoch: position.epoch });
    this.wake();
  }

  readiness(ready: boolean): void {
    this.states.push(ready);
    this.wake();
  }

  /** Payloads (as text) received on the channel, in order. */
  on(channel: string): string[] {
    return this.received.filter((m) => m.channel === channel).map((m) => m.payload.toString());
  }

  /** Resolves once check() holds, re-checked at every event. */
  async until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const wait = async (): Promise<void> => {
      while (!check()) await new Promise<void>((resolve) => this.waiters.push(resolve));
    };
    await within(wait(), timeoutMs, what);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

interface HistoryOptions {
  readonly size: number;
  readonly ttlS: number;
}

interface Subject {
  readonly bus: Bus;
  readonly events: Recorder;
  /** The bus's counters (the memory bus keeps none). */
  readonly stats: Stats;
}

interface Harness {
  readonly name: string;
  /**
   * Two started, ready buses on one backend: a publishes, b subscribes (one and the same
   * in-process bus). history: HISTORY_SIZE and HISTORY_TTL_S, or null (off) for the cases about
   * plain delivery, whose payloads are not client frames.
   */
  pair(t: TestContext, history?: HistoryOptions | null): Promise<{ a: Subject; b: Subject }>;
  /** A started bus whose backend cannot be reached, or why there is none. */
  unreachable(t: TestContext): Promise<Subject> | string;
  /** Takes the backend down and back, or why it cannot. */
  outage(): { stop(): Promise<void>; start(): Promise<void> } | string;
  /** Drops every subscriber connection once (they reconnect at once), or why there is none. */
  readonly killSubscribers: (() => Promise<void>) | string;
  /** Freezes the backend (nothing answered, sockets open) and thaws it, or why it cannot. */
  freeze(): { freeze(): void; thaw(): void } | string;
}

const text = (s: string): Buffer => Buffer.from(s);

async function started(t: TestContext, bus: Bus, waitReady: boolean, stats = new Stats()): Promise<Subject> {
  const events = new Recorder();
  bus.setListener(events);
  t.after(() => bus.close());
  await bus.start();
  if (waitReady) await events.until(() => events.states.includes(true), 'the bus to be ready');
  return { bus, events, stats };
}

/** Rejects like the contract says a publish that was certainly not sent does. */
async function refusedUnsent(publish: Promise<void>): Promise<void> {
  await assert.rejects(publish, (err: unknown) => err instanceof BusUnavailableError && err.sent === false);
}

/** Records every settle of a publish: its token and outcome, in the order the bus settled them. */
class Settles implements PublishReceipt<number> {
  readonly tokens: number[] = [];
  readonly errors: (BusUnavailableError | null)[] = [];
  private waiters: (() => void)[] = [];

  settled(token: number, err: BusUnavailableError | null): void {
    this.tokens.push(token);
    this.errors.push(err);
    for (const w of this.waiters.splice(0)) w();
  }

  async until(n: number, what: string, timeoutMs = 10_000): Promise<void> {
    const wait = async (): Promise<void> => {
      while (this.tokens.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
    };
    await within(wait(), timeoutMs, what);
  }
}

/** Publishes n messages on channels in turn, all in one event-loop turn; none is settled during the loop. */
function publishInOneTurn(bus: Bus, channels: readonly string[], n: number, settles: Settles, body: (channel: string, i: number) => Buffer): void {
  for (let i = 0; i < n; i++) {
    const channel = channels[i % channels.length]!;
    assert.equal(bus.publish(channel, body(channel, i), settles, i), null, 'taken');
  }
  assert.deepEqual(settles.tokens, [], 'nothing settled during publish()');
}

/** Each of n tokens settled once, in publish order per channel (token i went to channel i % channels). */
function assertSettledInOrder(tokens: readonly number[], channels: number, n: number): void {
  assert.deepEqual([...tokens].sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i), 'each once');
  for (let k = 0; k < channels; k++) {
    const on = tokens.filter((i) => i % channels === k);
    assert.deepEqual(on, [...on].sort((x, y) => x - y), `channel ${k}: in publish order`);
  }
}

interface Case {
  readonly name: string;
  readonly run: (h: Harness, t: TestContext) => Promise<void>;
}

const CASES: readonly Case[] = [
  {
    name: 'start announces readiness once; the bus is ready',
    run: async (h, t) => {
      const { b } = await h.pair(t);
      assert.deepEqual(b.events.states, [true]);
      assert.equal(b.bus.ready, true);
    },
  },
  {
    name: 'a published message reaches a subscriber of its channel, bytes unchanged, and nobody else',
    run: async (h, t) => {
      const { a, b } = await h.pair(t);
      b.bus.subscribe('news');
      await b.bus.whenLive('news');
      const payload = Buffer.from([0x7b, 0x00, 0xff, 0xc3, 0xa9, 0x7d]);
      await publishOn(a.bus, 'news', payload);
      await publishOn(a.bus, 'elsewhere', text('not for b'));
      await b.events.until(() => b.events.received.length >= 1, 'the message');
      assert.deepEqual(b.events.received[0], { channel: 'news', payload });
      await publishOn(a.bus, 'news', text('second'));
      await b.events.until(() => b.events.received.length >= 2, 'the second message');
      assert.deepEqual(b.events.on('elsewhere'), [], 'a channel b does not hold');
    },
  },
  {
    name: 'whenLive resolves at once for a channel not subscribed, and once the channel is live for one that is',
    run: async (h, t) => {
      const { a, b } = await h.pair(t);
      await within(b.bus.whenLive('not-subscribed'), 5000, 'whenLive on a channel not subscribed');
      const channels = Array.from({ length: 20 }, (_, i) => `live-${i}`);
      for (const c of channels) b.bus.subscribe(c);
      await within(Promise.all(channels.map((c) => b.bus.whenLive(c))), 5000, 'every channel to be live');
      // Live means: a message published from now on arrives.
      for (const c of channels) await publishOn(a.bus, c, text(c));
      await b.events.until(() => b.events.received.length === channels.length, 'one message per channel');
      assert.deepEqual(b.events.received.map((m) => m.channel), channels);
    },
  },
  {
    name: 'unsubscribe stops delivery on that channel only',
    run: async (h, t) => {
      const { a, b } = await h.pair(t);
      b.bus.subscribe('x');
      b.bus.subscribe('y');
      await Promise.all([b.bus.whenLive('x'), b.bus.whenLive('y')]);
      await publishOn(a.bus, 'x', text('one'));
      await b.events.until(() => b.events.on('x').length === 1, 'the first message');
      b.bus.unsubscribe('x');
      // A later subscribe goes on the same connection, after the unsubscribe: once it is live,
      // the unsubscribe has taken effect too.
      b.bus.subscribe('z');
      await b.bus.whenLive('z');
      await publishOn(a.bus, 'x', text('two'));
      await publishOn(a.bus, 'y', text('marker'));
      await b.events.until(() => b.events.on('y').length === 1, 'the marker published after');
      assert.deepEqual(b.events.on('x'), ['one']);
    },
  },
  {
    name: 'messages from one publisher arrive in the order they were published',
    run: async (h, t) => {
      const { a, b } = await h.pair(t);
      b.bus.subscribe('p');
      b.bus.subscribe('q');
      await Promise.all([b.bus.whenLive('p'), b.bus.whenLive('q')]);
      const sent = Array.from({ length: 300 }, (_, i) => ({ channel: i % 3 === 0 ? 'q' : 'p', body: String(i) }));
      // Not awaited one by one: all in flight at once.
      await Promise.all(sent.map((m) => publishOn(a.bus, m.channel, text(m.body))));
      await b.events.until(() => b.events.received.length === sent.length, 'every message');
      assert.deepEqual(
        b.events.received.map((m) => ({ channel: m.channel, body: m.payload.toString() })),
        sent,
      );
    },
  },
  {
    name: 'publishes of one turn, more than one batch holds: each settled once, in publish order per channel, delivered in order per channel',
    run: async (h, t) => {
      const { a, b } = await h.pair(t);
      const channels = ['s1', 's2', 's3'];
      for (const c of channels) b.bus.subscribe(c);
      await Promise.all(channels.map((c) => b.bus.whenLive(c)));
      const settles = new Settles();
      const n = 600; // more than BATCH_LIMITS.maxCount: several batches in one turn
      publishInOneTurn(a.bus, channels, n, settles, (_c, i) => text(`m${i}`));
      await settles.until(n, 'every publish settled');
      assertSettledInOrder(settles.tokens, channels.length, n);
      // One connection answers in order; Redis Cluster's masters answer apart.
      if (h.name !== 'ClusterBus') assert.deepEqual(settles.tokens, Array.from({ length: n }, (_, i) => i), 'in publish order overall');
      assert.ok(settles.errors.every((e) => e === null), 'all taken');
      await b.events.until(() => b.events.received.length === n, 'every message delivered');
      for (const [k, c] of channels.entries()) {
        const expected = Array.from({ length: n / channels.length }, (_, j) => `m${j * channels.length + k}`);
        assert.deepEqual(b.events.on(c), expected, `${c} in publish order`);
      }
    },
  },
  {
    name: 'a batch the backend took but did not answer in time: every entry fails as sent, unconfirmed',
    run: async (h, t) => {
      const frozen = h.freeze();
      if (typeof frozen === 'string') return t.skip(frozen);
      const { a } = await h.pair(t);
      const settles = new Settles();
      frozen.freeze();
      try {
        publishInOneTurn(a.bus, ['u1', 'u2'], 3, settles, (_c, i) => text(`u${i}`));
        await settles.until(3, 'the timeout of the batch', 15_000);
      } finally {
        frozen.thaw();
      }
      assert.deepEqual(settles.tokens, [0, 1, 2]);
      for (const err of settles.errors) assert.ok(err instanceof BusUnavailableError && err.sent, `sent, unconfirmed: ${err?.message}`);
    },
  },
  {
    name: 'publish while the backend is down rejects at once with sent === false',
    run: async (h, t) => {
      const down = h.unreachable(t);
      if (typeof down === 'string') return t.skip(down);
      const { bus } = await down;
      assert.equal(bus.ready, false);
      const started = Date.now();
      await refusedUnsent(publishOn(bus, 'c', text('lost')));
      assert.ok(Date.now() - started < 1000, 'refused at once, not after a timeout');
    },
  },
  {
    name: 'an outage: readiness false while down; back, readiness true and channels subscribed before it deliver again',
    run: async (h, t) => {
      const outage = h.outage();
      if (typeof outage === 'string') return t.skip(outage);
      const { a, b } = await h.pair(t);
      b.bus.subscribe('o');
      await b.bus.whenLive('o');
      await outage.stop();
      try {
        await b.events.until(() => b.events.states.at(-1) === false, 'readiness false');
        await a.events.until(() => a.events.states.at(-1) === false, 'readiness false on the publisher');
        assert.equal(b.bus.ready, false);
      } finally {
        await outage.start();
      }
      await b.events.until(() => b.events.states.at(-1) === true, 'readiness true again', 15_000);
      await a.events.until(() => a.events.states.at(-1) === true, 'readiness true again on the publisher', 15_000);
      await within(b.bus.whenLive('o'), 5000, 'the channel to be live again');
      await publishOn(a.bus, 'o', text('after'));
      await b.events.until(() => b.events.on('o').includes('after'), 'a message after the outage');
      assert.deepEqual(b.events.on('o'), ['after']);
      assert.deepEqual(b.events.states, [true, false, true], 'one edge each way');
    },
  },
  {
    name: 'close: readiness false once, not ready, publishes refused unsent, waiters released, a second close is harmless',
    run: async (h, t) => {
      const { b } = await h.pair(t);
      await b.bus.close();
      assert.equal(b.bus.ready, false);
      assert.deepEqual(b.events.states, [true, false]);
      await refusedUnsent(publishOn(b.bus, 'c', text('after close')));
      b.bus.subscribe('c');
      await within(b.bus.whenLive('c'), 5000, 'whenLive on a closed bus');
      await b.bus.close();
      assert.deepEqual(b.events.states, [true, false]);
    },
  },
];

/** History small enough to trim in a test. */
const HISTORY: HistoryOptions = { size: 10, ttlS: 60 };
const frame = (channel: string, n: number): Buffer => Buffer.from(`{"op":"message","channel":"${channel}","data":${n}}`);

/** Subscribes b to channel, publishes n messages from a, waits for all of them on b; returns their positions. */
async function published(a: Subject, b: Subject, channel: string, n: number): Promise<{ offset: number; epoch: string }[]> {
  b.bus.subscribe(channel);
  await b.bus.whenLive(channel);
  for (let i = 1; i <= n; i++) await publishOn(a.bus, channel, frame(channel, i));
  await b.events.until(() => b.events.positions.filter((p) => p.channel === channel).length === n, `${n} messages on ${channel}`);
  return b.events.positions.filter((p) => p.channel === channel).map(({ offset, epoch }) => ({ offset, epoch }));
}

/** A subscribe with since, as the hub runs it: registered for live messages, then the read, then resolve. */
async function recover(b: Subject, channel: string, since: Position, maxMessages = 100): Promise<RecoveryResult> {
  const recovery = new ChannelRecovery(since, { maxMessages, maxBuffered: 100 });
  const read = await b.bus.history!.since(channel, since.offset, since.epoch, maxMessages, HistoryReadPurpose.Recovery);
  return recovery.resolve(read);
}

const data = (m: { bytes: Buffer }): unknown => (JSON.parse(m.bytes.toString()) as { data: unknown }).data;

/** Recovery against each bus's history (HISTORY_SIZE 10): the bus contract of issue 10. */
const RECOVERY_CASES: readonly Case[] = [
  {
    name: 'history: messages carry offsets 1, 2, 3 ... in one epoch, inside the bytes as well as beside them',
    run: async (h, t) => {
      const { a, b } = await h.pair(t, HISTORY);
      const positions = await published(a, b, 'h', 3);
      assert.deepEqual(positions.map((p) => p.offset), [1, 2, 3]);
      const epoch = positions[0]!.epoch;
      assert.ok(isValidEpoch(epoch));
      assert.ok(positions.every((p) => p.epoch === epoch));
      const frames = b.events.on('h').map((text) => JSON.parse(text) as Record<string, unknown>);
      assert.deepEqual(frames, [1, 2, 3].map((n) => ({ op: 'message', channel: 'h', data: n, offset: n, epoch })));
    },
  },
  {
    name: 'history: the publishes of one turn, over several batches: offsets 1..n per channel in publish order, each settled once, in order per channel',
    run: async (h, t) => {
      const { a, b } = await h.pair(t, { size: 1000, ttlS: 60 });
      const channels = ['hb1', 'hb2'];
      for (const c of channels) b.bus.subscribe(c);
      await Promise.all(channels.map((c) => b.bus.whenLive(c)));
      const settles = new Settles();
      const n = 600;
      publishInOneTurn(a.bus, channels, n, settles, (c, i) => frame(c, i));
      await settles.until(n, 'every publish settled');
      assertSettledInOrder(settles.tokens, channels.length, n);
      assert.ok(settles.errors.every((e) => e === null), 'all taken');
      await b.events.until(() => b.events.positions.length === n, 'every message delivered');
      for (const [k, c] of channels.entries()) {
        const on = b.events.positions.filter((p) => p.channel === c);
        assert.deepEqual(on.map((p) => p.offset), Array.from({ length: n / 2 }, (_, j) => j + 1), `${c}: offsets 1..n`);
        assert.ok(on.every((p) => p.epoch === on[0]!.epoch), `${c}: one epoch`);
        const data = b.events.on(c).map((m) => (JSON.parse(m) as { data: number }).data);
        assert.deepEqual(data, Array.from({ length: n / 2 }, (_, j) => 2 * j + k), `${c}: in publish order`);
      }
    },
  },
  {
    name: 'history: a channel never published has offset 0 and an epoch, which its first publish keeps',
    run: async (h, t) => {
      const { a, b } = await h.pair(t, HISTORY);
      const top = await b.bus.history!.top('fresh', HistoryReadPurpose.Top);
      assert.equal(top.offset, 0);
      assert.ok(isValidEpoch(top.epoch));
      const [first] = await published(a, b, 'fresh', 1);
      assert.deepEqual(first, { offset: 1, epoch: top.epoch });
    },
  },
  {
    name: 'recovery: since an offset, exactly the missed messages in order',
    run: async (h, t) => {
      const { a, b } = await h.pair(t, HISTORY);
      const positions = await published(a, b, 'r', 7);
      const result = await recover(b, 'r', positions[2]!);
      assert.equal(result.outcome, Recovery.Recovered);
      assert.deepEqual(result.position, positions[6]);
      assert.deepEqual(result.messages.map((m) => m.offset), [4, 5, 6, 7]);
      assert.deepEqual(result.messages.map(data), [4, 5, 6, 7]);
      assert.deepEqual(result.messages.map((m) => m.bytes.toString()), b.events.on('r').slice(3), 'the very bytes delivered live');
      const none = await recover(b, 'r', positions[6]!);
      assert.equal(none.outcome, Recovery.Recovered, 'nothing missed is recovered too');
      assert.deepEqual(none.messages, []);
    },
  },
  {
    name: 'recovery: a foreign epoch, an offset beyond the top, more than the maximum: recovered false at the current position',
    run: async (h, t) => {
      const { a, b } = await h.pair(t, HISTORY);
      const positions = await published(a, b, 'w', 5);
      const { epoch } = positions[0]!;
      const foreign = await recover(b, 'w', { offset: 2, epoch: epoch === 'AAAAAAAAAAAA' ? 'BBBBBBBBBBBB' : 'AAAAAAAAAAAA' });
      assert.equal(foreign.outcome, Recovery.EpochMismatch);
      const beyond = await recover(b, 'w', { offset: 9, epoch });
      assert.equal(beyond.outcome, Recovery.BeyondTop);
      const many = await recover(b, 'w', { offset: 1, epoch }, 3);
      assert.equal(many.outcome, Recovery.TooMany);
      for (const r of [foreign, beyond, many]) {
        assert.deepEqual(r.position, { offset: 5, epoch });
        assert.deepEqual(r.messages, [], 'never a partial replay');
      }
    },
  },
  {
    name: 'recovery: trimmed past HISTORY_SIZE is recovered false; the last HISTORY_SIZE offsets still recover',
    run: async (h, t) => {
      const { a, b } = await h.pair(t, HISTORY);
      const positions = await published(a, b, 'trim', 15);
      const { epoch } = positions[0]!;
      const trimmed = await recover(b, 'trim', { offset: 4, epoch });
      assert.equal(trimmed.outcome, Recovery.Missing);
      assert.deepEqual(trimmed.messages, []);
      const window = await recover(b, 'trim', { offset: 5, epoch });
      assert.equal(window.outcome, Recovery.Recovered);
      assert.deepEqual(window.messages.map((m) => m.offset), [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    },
  },
  {
    name: 'gap repair: the subscriber connection killed under publishing, and a tail published while it is down: every offset once, in order',
    run: async (h, t) => {
      const kill = h.killSubscribers;
      if (typeof kill === 'string') return t.skip(kill);
      const { a, b } = await h.pair(t, { size: 1000, ttlS: 60 });
      b.bus.subscribe('g');
      await b.bus.whenLive('g');
      let sent = 0;
      const publishSome = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) await publishOn(a.bus, 'g', frame('g', ++sent));
      };
      await publishSome(50);
      // Killed mid-stream: what is published until b is resubscribed is repaired on the next message.
      const killed = kill();
      await publishSome(100);
      await killed;
      await b.events.until(() => b.events.positions.length === sent, 'every message after the kill', 20_000);
      // Killed again, then a tail and nothing after it: only the top check after the reconnect finds it.
      await kill();
      await publishSome(10);
      await b.events.until(() => b.events.positions.length === sent, 'the tail published while down', 20_000);
      assert.deepEqual(b.events.positions.map((p) => p.offset), Array.from({ length: sent }, (_, i) => i + 1));
      assert.deepEqual(b.events.on('g').map((text) => (JSON.parse(text) as { data: number }).data), Array.from({ length: sent }, (_, i) => i + 1));
      assert.deepEqual(b.events.losses, [], 'nothing lost: history held it all');
      assert.ok(b.stats.busGapsRepaired > 0, `some messages came from history (${b.stats.busGapsRepaired})`);
      assert.equal(b.stats.busGaps, 0);
    },
  },
];

const memory: Harness = {
  name: 'MemoryBus',
  pair: async (t, history = null) => {
    const one = await started(t, new MemoryBus({ history }), true);
    return { a: one, b: one };
  },
  unreachable: () => 'the in-process bus has no backend to lose',
  outage: () => 'the in-process bus has no backend to lose',
  killSubscribers: 'the in-process bus has no connection to lose',
  freeze: () => 'the in-process bus has no backend to freeze',
};

function redisHarness(redis: () => RedisHandle): Harness {
  const quiet = pino({ level: 'silent' });
  const make = (url: string, prefix: string, history: HistoryOptions | null, stats: Stats): RedisBus =>
    new RedisBus({ url, prefix, timeoutMs: 2000, probeIntervalMs: 200, probeTimeoutMs: 3000, history }, stats, quiet);
  const subject = (t: TestContext, url: string, prefix: string, history: HistoryOptions | null, ready: boolean): Promise<Subject> => {
    const stats = new Stats();
    return started(t, make(url, prefix, history, stats), ready, stats);
  };
  return {
    name: 'RedisBus',
    pair: async (t, history = null) => {
      const prefix = uniquePrefix();
      const [a, b] = await Promise.all([subject(t, redis().url, prefix, history, true), subject(t, redis().url, prefix, history, true)]);
      return { a, b };
    },
    unreachable: (t) => freePort().then((port) => subject(t, `redis://127.0.0.1:${port}`, uniquePrefix(), null, false)),
    outage: () => {
      const handle = redis();
      return handle.restartUnsupported ?? { stop: () => handle.stop(), start: () => handle.start() };
    },
    freeze: () => {
      const handle = redis();
      return handle.restartUnsupported ?? { freeze: () => handle.freeze(), thaw: () => handle.thaw() };
    },
    killSubscribers: async () => {
      const admin = redis().client();
      try {
        await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      } finally {
        admin.disconnect();
      }
    },
  };
}

function clusterHarness(rc: () => RedisCluster): Harness {
  const quiet = pino({ level: 'silent' });
  const make = (nodes: readonly { host: string; port: number }[], prefix: string, history: HistoryOptions | null, stats: Stats): ClusterBus =>
    new ClusterBus({ nodes, prefix, timeoutMs: 2000, probeIntervalMs: 200, probeTimeoutMs: 3000, history }, stats, quiet);
  const subject = (t: TestContext, nodes: readonly { host: string; port: number }[], prefix: string, history: HistoryOptions | null, ready: boolean): Promise<Subject> => {
    const stats = new Stats();
    return started(t, make(nodes, prefix, history, stats), ready, stats);
  };
  return {
    name: 'ClusterBus',
    pair: async (t, history = null) => {
      const prefix = uniquePrefix();
      const [a, b] = await Promise.all([subject(t, rc().seeds, prefix, history, true), subject(t, rc().seeds, prefix, history, true)]);
      return { a, b };
    },
    unreachable: (t) => freePort().then((port) => subject(t, [{ host: '127.0.0.1', port }], uniquePrefix(), null, false)),
    outage: () => {
      // Every node down at once (SIGKILL), then back with its nodes.conf: the same cluster, emptied.
      const cluster = rc();
      return {
        stop: async () => {
          for (const node of cluster.nodes) await cluster.kill(node.port);
        },
        start: async () => {
          await Promise.all(cluster.nodes.map((node) => cluster.restart(node.port)));
          await cluster.waitHealthy(30_000);
        },
      };
    },
    freeze: () => 'covered on one Redis: the per-slot batches share its writer (RedisBatchWriter)',
    // Every sharded subscriber connection, on every master at once.
    killSubscribers: async () => {
      const cluster = rc();
      await Promise.all(cluster.nodes.map((node) => cluster.command(node.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')));
    },
  };
}

describe('Bus contract', { timeout: 240_000 }, () => {
  let redis: RedisHandle | null = null;
  let cluster: RedisCluster | null = null;
  before(async () => {
    [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
  });
  after(async () => {
    await redis?.close();
    await cluster?.stop();
  });
  const harnesses = [memory, redisHarness(() => redis!), clusterHarness(() => cluster!)];
  for (const harness of harnesses) {
    describe(harness.name, () => {
      for (const c of [...CASES, ...RECOVERY_CASES]) test(c.name, { timeout: 30_000 }, (t) => c.run(harness, t));
    });
  }
});

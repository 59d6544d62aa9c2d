// Hub: refcounted bus subscriptions, pins, frame-once broadcast, disconnects, heartbeat and shutdown,
// against a fake HubClient.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Bus, BusListener } from '../../services/gateway/src/bus/bus.js';
import type { HistoryRead } from '../../services/gateway/src/bus/history-read.js';
import { Disconnect } from '../../services/gateway/src/codes.js';
import { Hub, type HubClient, type HubOptions } from '../../services/gateway/src/hub.js';
import { ChannelRecovery, Recovery } from '../../services/gateway/src/recovery.js';
import { Stats } from '../../services/gateway/src/stats.js';

/** A Bus that records what the hub asks of it. */
class RecordingBus implements Bus {
  readonly kind = 'memory';
  readonly ready = true;
  readonly history = null;
  readonly calls: string[] = [];

  setListener(_listener: BusListener): void {}
  async start(): Promise<void> {}
  publish(): null {
    return null;
  }
  subscribe(channel: string): void {
    this.calls.push(`subscribe ${channel}`);
  }
  unsubscribe(channel: string): void {
    this.calls.push(`unsubscribe ${channel}`);
  }
  whenLive(_channel: string): Promise<void> {
    return Promise.resolve();
  }
  async close(): Promise<void> {}

  count(call: string): number {
    return this.calls.filter((c) => c === call).length;
  }
}

/** A HubClient that records what the hub asks of it, with the real client's heartbeat rule. */
class FakeClient implements HubClient {
  readonly delivered: Buffer[] = [];
  readonly closes: Disconnect[] = [];
  disposed = 0;
  pings = 0;
  trims = 0;
  flushes = 0;
  isClosing = false;
  /** Set by the test when the peer answers; cleared at each ping, as the real client does. */
  alive = true;
  readonly queuedFrames = 0;
  /** Replaces flushScheduled() for a test of a faulty socket. */
  fault: Error | null = null;

  constructor(readonly id: number) {}

  deliver(frame: Buffer): void {
    this.delivered.push(frame);
  }
  // Like the real client: once closed, it is closing.
  close(disconnect: Disconnect): void {
    this.closes.push(disconnect);
    this.isClosing = true;
  }
  heartbeat(): boolean {
    if (!this.alive) return false;
    this.alive = false;
    this.pings++;
    this.trims++;
    return true;
  }
  dispose(): void {
    this.disposed++;
  }
  flushScheduled(): void {
    if (this.fault !== null) throw this.fault;
    this.flushes++;
  }
}

function setup(options: Partial<HubOptions> = {}): { hub: Hub; bus: RecordingBus; stats: Stats } {
  const bus = new RecordingBus();
  const stats = new Stats();
  const hub = new Hub(bus, stats, { maxChannelsPerClient: 128, ...options });
  return { hub, bus, stats };
}

function registered(hub: Hub, count: number): FakeClient[] {
  const fakes: FakeClient[] = [];
  for (let i = 0; i < count; i++) {
    const fake = new FakeClient(i + 1);
    hub.register(fake);
    fakes.push(fake);
  }
  return fakes;
}

/** The channels the hub holds for a client, sorted. */
const channelsOf = (hub: Hub, client: HubClient): string[] => [...hub.channelsOf(client)].sort();

/** Yields to pending promise callbacks, to check a promise has not settled yet. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Hub subscriptions', () => {
  test('refcounts bus subscriptions across three clients', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    const [a, b, c] = registered(hub, 3);
    assert.equal(hub.subscribe(a!, 'news'), 'subscribed');
    assert.deepEqual(bus.calls, ['subscribe news'], 'first subscriber asks the bus');
    assert.equal(hub.subscribe(b!, 'news'), 'subscribed');
    assert.equal(hub.subscribe(c!, 'news'), 'subscribed');
    assert.deepEqual(bus.calls, ['subscribe news'], 'later subscribers do not');
    assert.equal(hub.subscriptionCount, 3);
    assert.equal(hub.channelCount, 1);

    assert.equal(hub.unsubscribe(a!, 'news'), true);
    assert.equal(hub.unsubscribe(b!, 'news'), true);
    assert.deepEqual(bus.calls, ['subscribe news'], 'still one subscriber left');
    assert.equal(hub.unsubscribe(c!, 'news'), true);
    assert.deepEqual(bus.calls, ['subscribe news', 'unsubscribe news'], 'last one out gives the channel back');
    assert.equal(hub.subscriptionCount, 0);
    assert.equal(hub.channelCount, 0);

    // A fresh first subscriber asks the bus again.
    hub.subscribe(a!, 'news');
    assert.equal(bus.count('subscribe news'), 2);
  });

  test("keeps each client's channels in step", { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a] = registered(hub, 1);
    hub.subscribe(a!, 'x');
    hub.subscribe(a!, 'y');
    assert.deepEqual(channelsOf(hub, a!), ['x', 'y']);
    hub.unsubscribe(a!, 'x');
    assert.deepEqual(channelsOf(hub, a!), ['y']);
  });

  test('subscribing a client that is not registered is a bug, and changes nothing', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    assert.throws(() => hub.subscribe(new FakeClient(9), 'x'), /not registered/);
    assert.deepEqual(bus.calls, []);
    assert.equal(hub.subscriptionCount, 0);
  });

  test("subscribe returns 'already' without counting twice", { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    const [a] = registered(hub, 1);
    assert.equal(hub.subscribe(a!, 'x'), 'subscribed');
    assert.equal(hub.subscribe(a!, 'x'), 'already');
    assert.equal(hub.subscriptionCount, 1);
    assert.equal(bus.count('subscribe x'), 1);
  });

  test("subscribe returns 'limit' at maxChannelsPerClient and does not touch the bus", { timeout: 5000 }, () => {
    const { hub, bus } = setup({ maxChannelsPerClient: 2 });
    const [a, b] = registered(hub, 2);
    assert.equal(hub.subscribe(a!, 'c1'), 'subscribed');
    assert.equal(hub.subscribe(a!, 'c2'), 'subscribed');
    assert.equal(hub.subscribe(a!, 'c3'), 'limit');
    assert.equal(hub.subscribe(a!, 'c1'), 'already', "'already' is checked before the limit");
    assert.equal(bus.count('subscribe c3'), 0);
    assert.equal(hub.channelsOf(a!).has('c3'), false);
    assert.equal(hub.subscriptionCount, 2);
    assert.equal(hub.channelCount, 2);
    // The limit is per client.
    assert.equal(hub.subscribe(b!, 'c3'), 'subscribed');
    // Leaving one channel makes room again.
    hub.unsubscribe(a!, 'c1');
    assert.equal(hub.subscribe(a!, 'c3'), 'subscribed');
  });

  test('unsubscribe from a channel not held returns false and changes nothing', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    const [a, b] = registered(hub, 2);
    hub.subscribe(b!, 'x');
    assert.equal(hub.unsubscribe(a!, 'x'), false);
    assert.equal(hub.unsubscribe(a!, 'nowhere'), false);
    assert.equal(hub.subscriptionCount, 1);
    assert.equal(hub.channelCount, 1);
    assert.equal(bus.count('unsubscribe x'), 0);
  });

  test('whenLive is the bus whenLive', { timeout: 5000 }, async () => {
    const { hub } = setup();
    await hub.whenLive('x');
  });
});

describe('Hub pins', () => {
  test('pin holds a channel on the bus with no subscribers, unpin releases it', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    hub.pin(['a', 'b']);
    assert.deepEqual(bus.calls, ['subscribe a', 'subscribe b']);
    assert.equal(hub.channelCount, 2);
    assert.equal(hub.subscriptionCount, 0);
    hub.unpin(['a', 'b']);
    assert.deepEqual(bus.calls, ['subscribe a', 'subscribe b', 'unsubscribe a', 'unsubscribe b']);
    assert.equal(hub.channelCount, 0);
  });

  test('a pinned channel survives its last subscriber leaving', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    const [a] = registered(hub, 1);
    hub.pin(['a']);
    hub.subscribe(a!, 'a');
    assert.equal(bus.count('subscribe a'), 1, 'the pin already holds the bus subscription');
    hub.unsubscribe(a!, 'a');
    assert.equal(bus.count('unsubscribe a'), 0, 'still pinned');
    assert.equal(hub.channelCount, 1);
    hub.unpin(['a']);
    assert.equal(bus.count('unsubscribe a'), 1);
  });

  test('a subscriber keeps the channel after the pin goes', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    const [a] = registered(hub, 1);
    hub.pin(['a']);
    hub.subscribe(a!, 'a');
    hub.unpin(['a']);
    assert.equal(bus.count('unsubscribe a'), 0);
    hub.unsubscribe(a!, 'a');
    assert.equal(bus.count('unsubscribe a'), 1);
  });

  test('pins are counted', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    hub.pin(['a']);
    hub.pin(['a']);
    assert.equal(bus.count('subscribe a'), 1);
    hub.unpin(['a']);
    assert.equal(bus.count('unsubscribe a'), 0, 'one pin remains');
    hub.unpin(['a']);
    assert.equal(bus.count('unsubscribe a'), 1);
  });

  test('unpin of an unknown channel is a no-op', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    hub.unpin(['never']);
    assert.deepEqual(bus.calls, []);
    assert.equal(hub.channelCount, 0);
  });
});

/** Decodes a server-to-client WebSocket frame header; asserts a final, unmasked text frame. */
function decodeTextFrame(frame: Buffer): { headerLength: number; payloadLength: number } {
  assert.equal(frame[0], 0x81, 'FIN set, RSV clear, opcode 1 (text)');
  const second = frame[1]!;
  assert.equal(second & 0x80, 0, 'server frames are not masked');
  const len7 = second & 0x7f;
  if (len7 < 126) return { headerLength: 2, payloadLength: len7 };
  if (len7 === 126) return { headerLength: 4, payloadLength: frame.readUInt16BE(2) };
  const big = frame.readBigUInt64BE(2);
  assert.ok(big <= BigInt(Number.MAX_SAFE_INTEGER));
  return { headerLength: 10, payloadLength: Number(big) };
}

describe('Hub broadcast', () => {
  test('frames once: every subscriber gets the very same buffer', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a, b, c, outsider] = registered(hub, 4);
    for (const f of [a!, b!, c!]) hub.subscribe(f, 'news');
    hub.subscribe(outsider!, 'other');
    const payload = Buffer.from('{"op":"message","channel":"news","data":1}');
    hub.broadcast('news', payload);
    for (const f of [a!, b!, c!]) assert.equal(f.delivered.length, 1);
    assert.strictEqual(a!.delivered[0], b!.delivered[0]);
    assert.strictEqual(b!.delivered[0], c!.delivered[0]);
    assert.equal(outsider!.delivered.length, 0, 'non-subscribers get nothing');
  });

  test('the frame is an unmasked text frame carrying the payload, at every length encoding', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a] = registered(hub, 1);
    hub.subscribe(a!, 'c');
    const sizes = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000];
    for (const size of sizes) {
      const payload = Buffer.alloc(size);
      for (let i = 0; i < size; i++) payload[i] = 0x20 + (i % 90);
      hub.broadcast('c', payload);
      const frame = a!.delivered.at(-1)!;
      const { headerLength, payloadLength } = decodeTextFrame(frame);
      const expectedHeader = size < 126 ? 2 : size < 65536 ? 4 : 10;
      assert.equal(headerLength, expectedHeader, `header length for ${size}`);
      assert.equal(frame[1]! & 0x7f, size < 126 ? size : size < 65536 ? 126 : 127, `length code for ${size}`);
      assert.equal(payloadLength, size);
      assert.equal(frame.length, headerLength + size);
      assert.ok(frame.subarray(headerLength).equals(payload), `payload intact for ${size}`);
    }
    assert.equal(a!.delivered.length, sizes.length);
  });

  test('delivers in broadcast order', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a] = registered(hub, 1);
    hub.subscribe(a!, 'c');
    for (let i = 0; i < 10; i++) hub.broadcast('c', Buffer.from(String(i)));
    const payloads = a!.delivered.map((f) => f.subarray(decodeTextFrame(f).headerLength).toString());
    assert.deepEqual(payloads, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  test('an unknown channel delivers nothing but still counts the bus message', { timeout: 5000 }, () => {
    let observed = 0;
    const { hub, stats } = setup({ observeFanout: () => observed++ });
    const [a] = registered(hub, 1);
    hub.subscribe(a!, 'known');
    hub.broadcast('unknown', Buffer.from('x'));
    assert.equal(stats.busMessages, 1);
    assert.equal(a!.delivered.length, 0);
    assert.equal(observed, 0, 'no fan-out happened');
  });

  test('a pinned channel with no subscribers delivers nothing', { timeout: 5000 }, () => {
    let observed = 0;
    const { hub, stats } = setup({ observeFanout: () => observed++ });
    hub.pin(['p']);
    hub.broadcast('p', Buffer.from('x'));
    assert.equal(stats.busMessages, 1);
    assert.equal(observed, 0);
  });

  test('observes fan-out time once per delivered broadcast', { timeout: 5000 }, () => {
    const seconds: number[] = [];
    const { hub, stats } = setup({ observeFanout: (s) => seconds.push(s) });
    const [a, b] = registered(hub, 2);
    hub.subscribe(a!, 'c');
    hub.subscribe(b!, 'c');
    hub.broadcast('c', Buffer.from('1'));
    hub.broadcast('c', Buffer.from('2'));
    assert.equal(stats.busMessages, 2);
    assert.equal(seconds.length, 2);
    for (const s of seconds) assert.ok(s >= 0 && s < 5, `plausible duration ${s}`);
  });
});

describe('Hub eviction', () => {
  test('an eviction counts its reason, detaches the client, and closes it with the entry', { timeout: 5000 }, () => {
    const { hub, bus, stats } = setup();
    const [a, b] = registered(hub, 2);
    hub.subscribe(a!, 'solo');
    hub.subscribe(a!, 'shared');
    hub.subscribe(b!, 'shared');
    hub.disconnect(a!, Disconnect.SlowConsumer);
    assert.equal(stats.evicted.slow_consumer, 1);
    assert.equal(stats.evicted.queue_overflow, 0);
    assert.deepEqual(a!.closes, [Disconnect.SlowConsumer]);
    assert.deepEqual(channelsOf(hub, a!), []);
    assert.equal(bus.count('unsubscribe solo'), 1, 'it was the last on solo');
    assert.equal(bus.count('unsubscribe shared'), 0, 'b still holds shared');
    assert.equal(hub.subscriptionCount, 1);
    assert.equal(hub.channelCount, 1);
    // The evicted client receives no more broadcasts.
    hub.broadcast('shared', Buffer.from('x'));
    assert.equal(a!.delivered.length, 0);
    assert.equal(b!.delivered.length, 1);
    // Still registered until its connection closes.
    assert.equal(hub.clientCount, 2);
  });

  test('disconnect is a no-op for a client already closing', { timeout: 5000 }, () => {
    const { hub, stats } = setup();
    const [a] = registered(hub, 1);
    hub.subscribe(a!, 'c');
    hub.disconnect(a!, Disconnect.QueueOverflow);
    hub.disconnect(a!, Disconnect.QueueOverflow);
    hub.disconnect(a!, Disconnect.SlowConsumer);
    hub.disconnect(a!, Disconnect.RateLimited);
    assert.equal(stats.evicted.queue_overflow, 1);
    assert.equal(stats.evicted.slow_consumer, 0);
    assert.equal(stats.policyCloses.rate_limited, 0);
    assert.deepEqual(a!.closes, [Disconnect.QueueOverflow]);
  });

  test('a close for a gateway fault is counted by its reason, never silent', { timeout: 5000 }, () => {
    const { hub, stats } = setup();
    const [a, b] = registered(hub, 2);
    hub.subscribe(a!, 'c');
    hub.disconnect(a!, Disconnect.InternalError);
    hub.disconnect(b!, Disconnect.WriteError);
    assert.equal(stats.policyCloses.internal_error, 1);
    assert.equal(stats.policyCloses.write_error, 1);
    assert.deepEqual(Object.values(stats.evicted), [0, 0, 0]);
    assert.deepEqual([...a!.closes, ...b!.closes].map((d) => d.code), [1011, null]);
  });

  test('a policy close counts its reason and no eviction', { timeout: 5000 }, () => {
    const { hub, bus, stats } = setup();
    const [a, b] = registered(hub, 2);
    hub.subscribe(a!, 'c');
    hub.disconnect(a!, Disconnect.RateLimited);
    hub.disconnect(b!, Disconnect.TokenExpired);
    assert.deepEqual(stats.policyCloses, { rate_limited: 1, token_expired: 1, internal_error: 0, write_error: 0 });
    assert.deepEqual(Object.values(stats.evicted), [0, 0, 0]);
    assert.deepEqual(
      [...a!.closes, ...b!.closes].map((d) => [d.code, d.reason]),
      [
        [1008, 'rate limit exceeded'],
        [4001, 'token expired'],
      ],
    );
    assert.equal(bus.count('unsubscribe c'), 1, 'detached');
  });

  test('an internal error detaches the client and closes it with 1011, counting no eviction', { timeout: 5000 }, () => {
    const { hub, bus, stats } = setup();
    const [a, b] = registered(hub, 2);
    hub.subscribe(a!, 'c');
    hub.subscribe(b!, 'c');
    hub.disconnect(a!, Disconnect.InternalError);
    assert.deepEqual(
      a!.closes.map((d) => [d.code, d.reason]),
      [[1011, 'internal error']],
    );
    assert.deepEqual(channelsOf(hub, a!), []);
    assert.equal(bus.count('unsubscribe c'), 0, 'b still holds c');
    assert.deepEqual(Object.values(stats.evicted), [0, 0, 0]);
    hub.broadcast('c', Buffer.from('x'));
    assert.equal(a!.delivered.length, 0);
    assert.equal(b!.delivered.length, 1);
    hub.disconnect(a!, Disconnect.InternalError); // already closing: nothing more
    assert.equal(a!.closes.length, 1);
  });

  test('unregister detaches, disposes, and updates connectionsOpen', { timeout: 5000 }, () => {
    const { hub, bus, stats } = setup();
    const [a, b] = registered(hub, 2);
    assert.equal(stats.connectionsOpened, 2);
    assert.equal(stats.connectionsOpen, 2);
    hub.subscribe(a!, 'x');
    hub.subscribe(a!, 'y');
    hub.subscribe(b!, 'y');
    hub.unregister(a!);
    assert.equal(a!.disposed, 1);
    assert.deepEqual(channelsOf(hub, a!), []);
    assert.equal(bus.count('unsubscribe x'), 1);
    assert.equal(bus.count('unsubscribe y'), 0);
    assert.equal(hub.subscriptionCount, 1);
    assert.equal(hub.clientCount, 1);
    assert.equal(stats.connectionsOpen, 1);
    assert.equal(stats.connectionsOpened, 2, 'opened is a running total');
    hub.unregister(b!);
    assert.equal(stats.connectionsOpen, 0);
    assert.equal(hub.channelCount, 0);
    assert.equal(hub.subscriptionCount, 0);
  });
});

describe('Hub heartbeat', () => {
  test('pings alive clients, then evicts one that did not answer', { timeout: 5000 }, () => {
    const { hub, stats } = setup();
    const [a, b] = registered(hub, 2);
    hub.subscribe(b!, 'c');

    hub.heartbeat();
    assert.equal(a!.pings, 1);
    assert.equal(b!.pings, 1);
    assert.equal(a!.alive, false, 'cleared until the pong');
    assert.equal(b!.alive, false);

    a!.alive = true; // a answers the ping; b does not
    hub.heartbeat();
    assert.equal(a!.pings, 2);
    assert.equal(b!.pings, 1, 'a dead client is not pinged again');
    assert.deepEqual(b!.closes, [Disconnect.HeartbeatTimeout]);
    assert.deepEqual(a!.closes, []);
    assert.equal(stats.evicted.heartbeat_timeout, 1);
    assert.deepEqual(channelsOf(hub, b!), [], 'detached');
    assert.equal(hub.channelCount, 0);

    // b is now closing: later ticks leave it alone.
    a!.alive = true;
    hub.heartbeat();
    assert.equal(b!.pings, 1);
    assert.equal(stats.evicted.heartbeat_timeout, 1);
    assert.equal(a!.pings, 3);
    assert.equal(a!.trims, 3, 'each live client releases an idle queue buffer at each ping');
  });

  test('in slices: each tick pings one slice, every client once per round; a dead one goes a round later', { timeout: 5000 }, () => {
    const { hub, stats } = setup({ heartbeatSlices: 4 });
    const clients = registered(hub, 10);
    const pinged = (): number => clients.reduce((sum, c) => sum + c.pings, 0);
    const perTick: number[] = [];
    for (let tick = 0; tick < 4; tick++) {
      const before = pinged();
      hub.heartbeat();
      perTick.push(pinged() - before);
    }
    assert.deepEqual(perTick.sort(), [2, 2, 3, 3], 'the slices are even');
    assert.ok(clients.every((c) => c.pings === 1), 'one round: every client pinged exactly once');

    // All answer but the first; it is terminated at its own slice's next visit, one round later.
    const [dead, ...rest] = clients;
    for (const c of rest) c.alive = true;
    const ticksUntilEvicted = ((): number => {
      for (let tick = 1; tick <= 4; tick++) {
        hub.heartbeat();
        if (dead!.closes.length > 0) return tick;
      }
      return -1;
    })();
    assert.ok(ticksUntilEvicted >= 1 && ticksUntilEvicted <= 4, 'within the round');
    assert.deepEqual(dead!.closes, [Disconnect.HeartbeatTimeout]);
    assert.equal(stats.evicted.heartbeat_timeout, 1);
    // The same slice, a round on: the tick that evicted it is where it was first pinged.
    assert.equal(perTick.length, 4);
    for (let tick = ticksUntilEvicted; tick < 4; tick++) hub.heartbeat();
    assert.ok(rest.every((c) => c.pings === 2 && c.closes.length === 0), 'the others: pinged again, kept');
  });

  test('in slices: a client that leaves leaves its slice; a newcomer joins the smallest', { timeout: 5000 }, () => {
    const { hub } = setup({ heartbeatSlices: 2 });
    const [a, b, c] = registered(hub, 3);
    hub.unregister(a!);
    hub.unregister(c!);
    const [d] = registered(hub, 1);
    hub.heartbeat();
    hub.heartbeat();
    assert.deepEqual([a!.pings, b!.pings, c!.pings, d!.pings], [0, 1, 0, 1]);
    b!.alive = true;
    d!.alive = true;
    hub.heartbeat();
    assert.equal(b!.pings + d!.pings, 3, 'b and d in different slices: one of them pinged per tick');
  });

  test('skips clients already closing', { timeout: 5000 }, () => {
    const { hub, stats } = setup();
    const [a] = registered(hub, 1);
    a!.isClosing = true;
    a!.alive = false;
    hub.heartbeat();
    assert.equal(a!.pings, 0);
    assert.equal(stats.evicted.heartbeat_timeout, 0);
  });
});

describe('Hub write coalescing', () => {
  test('flushes each scheduled client once, after the turn, with one setImmediate for all', { timeout: 5000 }, async () => {
    const { hub } = setup();
    const [a, b] = registered(hub, 2);
    hub.scheduleFlush(a!);
    hub.scheduleFlush(b!);
    assert.equal(a!.flushes + b!.flushes, 0, 'nothing written during the turn');
    await settle();
    assert.equal(a!.flushes, 1);
    assert.equal(b!.flushes, 1);
    await settle();
    assert.equal(a!.flushes, 1, 'not flushed again unless scheduled again');
    // The next turn works the same (the two lists were swapped, not lost).
    hub.scheduleFlush(a!);
    await settle();
    assert.equal(a!.flushes, 2);
    assert.equal(b!.flushes, 1);
  });

  test('a client whose flush throws is terminated and detached, and the others are still flushed', { timeout: 5000 }, async () => {
    const { hub, bus } = setup();
    const [a, b] = registered(hub, 2);
    hub.subscribe(a!, 'solo');
    a!.fault = new Error('socket fault');
    for (const f of [a!, b!]) hub.scheduleFlush(f);
    await settle();
    assert.deepEqual(a!.closes, [Disconnect.WriteError]);
    assert.equal(Disconnect.WriteError.code, null, 'a terminate: no close frame after a failed write');
    assert.equal(bus.count('unsubscribe solo'), 1);
    assert.equal(b!.flushes, 1);
  });
});

describe('Hub closeAll', () => {
  test('closes every client and resolves once all are unregistered', { timeout: 5000 }, async () => {
    const { hub, bus } = setup();
    const fakes = registered(hub, 3);
    fakes.forEach((f, i) => {
      hub.subscribe(f, 'all');
      hub.subscribe(f, `own${i}`);
    });
    let resolved = false;
    const done = hub.closeAll(Disconnect.Shutdown).then(() => {
      resolved = true;
    });
    for (const f of fakes) {
      assert.deepEqual(
        f.closes.map((d) => [d.code, d.reason]),
        [[1001, 'server shutting down']],
      );
    }
    // Channels are released at once, not when the sockets finally close.
    assert.equal(hub.channelCount, 0);
    assert.equal(hub.subscriptionCount, 0);
    assert.equal(bus.count('unsubscribe all'), 1);

    await settle();
    assert.equal(resolved, false);
    hub.unregister(fakes[0]!);
    hub.unregister(fakes[1]!);
    await settle();
    assert.equal(resolved, false, 'one client still open');
    hub.unregister(fakes[2]!);
    await done;
    assert.equal(resolved, true);
    assert.equal(hub.clientCount, 0);
  });

  test('resolves at once with no clients', { timeout: 5000 }, async () => {
    const { hub } = setup();
    await hub.closeAll(Disconnect.Shutdown);
  });
});

describe('Hub bookkeeping', () => {
  test('subscriptionCount and channelCount follow many operations', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    const fakes = registered(hub, 5);
    // Client i subscribes to channels 0..i.
    fakes.forEach((f, i) => {
      for (let ch = 0; ch <= i; ch++) hub.subscribe(f, `ch${ch}`);
    });
    assert.equal(hub.subscriptionCount, 1 + 2 + 3 + 4 + 5);
    assert.equal(hub.channelCount, 5);
    assert.equal(bus.calls.filter((c) => c.startsWith('subscribe')).length, 5);

    hub.unregister(fakes[4]!); // the only holder of ch4
    assert.equal(hub.subscriptionCount, 10);
    assert.equal(hub.channelCount, 4);
    hub.disconnect(fakes[3]!, Disconnect.SlowConsumer); // the last holder of ch3 now
    assert.equal(hub.subscriptionCount, 6);
    assert.equal(hub.channelCount, 3);
    hub.unsubscribe(fakes[0]!, 'ch0');
    assert.equal(hub.subscriptionCount, 5);
    assert.equal(hub.channelCount, 3);
    for (const f of fakes) hub.unregister(f);
    assert.equal(hub.subscriptionCount, 0);
    assert.equal(hub.channelCount, 0);
    assert.equal(bus.calls.filter((c) => c.startsWith('unsubscribe')).length, 5);
  });
});

describe('Hub recovery (subscribe with since)', () => {
  const E = 'E1';
  const payload = (offset: number): Buffer => Buffer.from(`{"op":"message","channel":"r","data":${offset},"offset":${offset},"epoch":"${E}"}`);
  /** What a client was sent, as text (the frame header stripped: these frames are short). */
  const texts = (c: FakeClient): string[] => c.delivered.map((f) => f.subarray(2).toString());
  const read = (top: number, offsets: number[]): HistoryRead => ({
    epoch: E,
    top,
    messages: offsets.map((offset) => ({ offset, bytes: payload(offset) })),
    complete: true,
  });
  const limits = { maxMessages: 100, maxBuffered: 100 };

  test('a recovering client gets no live frame while its read runs; the others are served as usual', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [plain, recovering] = registered(hub, 2);
    hub.subscribe(plain!, 'r');
    const recovery = new ChannelRecovery({ offset: 2, epoch: E }, limits);
    assert.equal(hub.subscribe(recovering!, 'r', recovery), 'subscribed');
    assert.deepEqual(channelsOf(hub, recovering!), ['r'], 'it holds the channel');
    assert.equal(hub.subscriptionCount, 2);
    hub.broadcast('r', payload(5), { offset: 5, epoch: E });
    assert.equal(plain!.delivered.length, 1);
    assert.equal(recovering!.delivered.length, 0, 'buffered in its recovery');

    const result = hub.resolveRecovery(recovering!, 'r', recovery, read(4, [3, 4]));
    assert.ok(result !== null);
    assert.equal(result.outcome, Recovery.Recovered);
    assert.deepEqual(result.position, { offset: 4, epoch: E });
    assert.deepEqual(result.messages.map((m) => m.offset), [3, 4, 5], 'the replay, then the live message held meanwhile');

    hub.broadcast('r', payload(6), { offset: 6, epoch: E });
    assert.deepEqual(texts(recovering!), [payload(6).toString()], 'an ordinary subscriber from then on');
    assert.equal(plain!.delivered.length, 2);
  });

  test('live copies of replayed messages arriving after the ack (another Redis connection) are skipped for that client only', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [plain, recovering] = registered(hub, 2);
    hub.subscribe(plain!, 'r');
    const recovery = new ChannelRecovery({ offset: 2, epoch: E }, limits);
    hub.subscribe(recovering!, 'r', recovery);
    const result = hub.resolveRecovery(recovering!, 'r', recovery, read(4, [3, 4]));
    assert.deepEqual(result?.messages.map((m) => m.offset), [3, 4]);
    for (const offset of [3, 4, 5, 6]) hub.broadcast('r', payload(offset), { offset, epoch: E });
    assert.deepEqual(texts(recovering!), [payload(5).toString(), payload(6).toString()], 'the replay sent 3 and 4');
    assert.equal(plain!.delivered.length, 4, 'the others get every message');
  });

  test('a plain subscriber acked at a position is sent only what follows it; acked() for a channel it does not hold is a no-op', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a, b] = registered(hub, 2);
    hub.subscribe(a!, 'r');
    hub.subscribe(b!, 'r');
    hub.acked(a!, 'r', { offset: 4, epoch: E });
    hub.acked(a!, 'elsewhere', { offset: 4, epoch: E });
    for (const offset of [4, 5]) hub.broadcast('r', payload(offset), { offset, epoch: E });
    assert.deepEqual(texts(a!), [payload(5).toString()]);
    assert.equal(b!.delivered.length, 2);
    hub.unsubscribe(a!, 'r');
    hub.subscribe(a!, 'r');
    hub.broadcast('r', payload(3), { offset: 3, epoch: E });
    assert.equal(a!.delivered.length, 2, 'a seam goes with the subscription');
  });

  test('a message of another epoch ends the seam', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a] = registered(hub, 1);
    const recovery = new ChannelRecovery({ offset: 4, epoch: E }, limits);
    hub.subscribe(a!, 'r', recovery);
    hub.resolveRecovery(a!, 'r', recovery, read(4, []));
    hub.broadcast('r', payload(1), { offset: 1, epoch: 'E2' });
    hub.broadcast('r', payload(2), { offset: 2, epoch: 'E2' });
    assert.equal(a!.delivered.length, 2);
  });

  test('each outcome is counted under its result', { timeout: 5000 }, () => {
    const { hub, stats } = setup();
    const [a, b] = registered(hub, 2);
    const ok = new ChannelRecovery({ offset: 4, epoch: E }, limits);
    const foreign = new ChannelRecovery({ offset: 1, epoch: 'other' }, limits);
    hub.subscribe(a!, 'r', ok);
    hub.subscribe(b!, 'r', foreign);
    assert.equal(hub.resolveRecovery(a!, 'r', ok, read(4, []))?.outcome, Recovery.Recovered);
    assert.equal(hub.resolveRecovery(b!, 'r', foreign, read(4, []))?.outcome, Recovery.EpochMismatch);
    assert.equal(stats.recoveries.recovered, 1);
    assert.equal(stats.recoveries.epoch_mismatch, 1);
    assert.equal(Object.values(stats.recoveries).reduce((x, y) => x + y), 2);
  });

  test('a client that left during the read gets nothing, and the channel is given back', { timeout: 5000 }, () => {
    const { hub, bus, stats } = setup();
    const [a] = registered(hub, 1);
    const recovery = new ChannelRecovery({ offset: 0, epoch: E }, limits);
    hub.subscribe(a!, 'r', recovery);
    assert.equal(hub.unsubscribe(a!, 'r'), true);
    assert.deepEqual(bus.calls, ['subscribe r', 'unsubscribe r'], 'a recovering client alone holds the channel, and releases it');
    assert.equal(hub.resolveRecovery(a!, 'r', recovery, read(0, [])), null);
    assert.equal(stats.recoveries.recovered, 0, 'not counted');
    assert.equal(hub.subscriptionCount, 0);
  });

  test('a recovery from an earlier subscribe does not resolve a later one', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a] = registered(hub, 1);
    const first = new ChannelRecovery({ offset: 0, epoch: E }, limits);
    const second = new ChannelRecovery({ offset: 0, epoch: E }, limits);
    hub.subscribe(a!, 'r', first);
    hub.unsubscribe(a!, 'r');
    hub.subscribe(a!, 'r', second);
    assert.equal(hub.resolveRecovery(a!, 'r', first, read(0, [])), null);
    assert.notEqual(hub.resolveRecovery(a!, 'r', second, read(0, [])), null);
  });

  test('unregister during the read releases the channel', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    const [a] = registered(hub, 1);
    const recovery = new ChannelRecovery({ offset: 0, epoch: E }, limits);
    hub.subscribe(a!, 'r', recovery);
    hub.unregister(a!);
    assert.equal(bus.count('unsubscribe r'), 1);
    assert.equal(hub.resolveRecovery(a!, 'r', recovery, read(0, [])), null);
  });

  test('abandonRecovery takes the client out of the channel; it is a no-op once resolved', { timeout: 5000 }, () => {
    const { hub, bus } = setup();
    const [a, b] = registered(hub, 2);
    const failed = new ChannelRecovery({ offset: 0, epoch: E }, limits);
    hub.subscribe(a!, 'r', failed);
    hub.abandonRecovery(a!, 'r', failed);
    assert.deepEqual(channelsOf(hub, a!), []);
    assert.equal(bus.count('unsubscribe r'), 1);
    const done = new ChannelRecovery({ offset: 0, epoch: E }, limits);
    hub.subscribe(b!, 'r', done);
    hub.resolveRecovery(b!, 'r', done, read(0, []));
    hub.abandonRecovery(b!, 'r', done);
    assert.deepEqual(channelsOf(hub, b!), ['r'], 'a resolved subscribe stands');
  });

  test('lost: one frame to every subscriber; a recovering client is told through its recovery (interrupted)', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a, b, other] = registered(hub, 3);
    hub.subscribe(a!, 'r');
    hub.subscribe(other!, 'elsewhere');
    const recovery = new ChannelRecovery({ offset: 1, epoch: E }, limits);
    hub.subscribe(b!, 'r', recovery);
    hub.lost('r', { offset: 7, epoch: E });
    assert.deepEqual(texts(a!).map((t) => JSON.parse(t)), [{ op: 'lost', channel: 'r', offset: 7, epoch: E }]);
    assert.equal(b!.delivered.length, 0);
    assert.equal(other!.delivered.length, 0);
    hub.broadcast('r', payload(8), { offset: 8, epoch: E });
    const result = hub.resolveRecovery(b!, 'r', recovery, read(4, [2, 3, 4]));
    assert.equal(result?.outcome, Recovery.Interrupted);
    assert.deepEqual(result?.position, { offset: 7, epoch: E }, 'the ack reports the position the channel jumped to');
    assert.deepEqual(result?.messages.map((m) => m.offset), [8]);
  });

  test('a message without a position (history off) is not buffered, and lost on an unknown channel is a no-op', { timeout: 5000 }, () => {
    const { hub } = setup();
    const [a] = registered(hub, 1);
    const recovery = new ChannelRecovery({ offset: 0, epoch: E }, limits);
    hub.subscribe(a!, 'r', recovery);
    hub.broadcast('r', Buffer.from('{"op":"message","channel":"r","data":1}'));
    hub.lost('nowhere', { offset: 1, epoch: E });
    assert.deepEqual(hub.resolveRecovery(a!, 'r', recovery, read(0, []))?.messages, []);
  });
});

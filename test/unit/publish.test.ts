// The one publish pipeline with the memory bus and a bus that fails: every outcome, its registry
// entry, and what is counted under which source and reason.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChannelPatterns, type Grant, OPEN_GRANT } from '../../services/gateway/src/auth.js';
import { type Bus, BusUnavailableError, type PublishReceipt } from '../../services/gateway/src/bus/bus.js';
import { MemoryBus } from '../../services/gateway/src/bus/memory.js';
import { Refusal } from '../../services/gateway/src/codes.js';
import { type ProtocolError, parseCommand, parsePublishBody } from '../../services/gateway/src/protocol.js';
import { PublishPipeline, type PublishRefused, isPending } from '../../services/gateway/src/publish.js';
import { Stats } from '../../services/gateway/src/stats.js';
import { gatewayPromisesDuring } from '../helpers/promises.js';

function setup(bus: Bus = new MemoryBus(), maxMessageBytes = 200): { stats: Stats; ws: PublishPipeline; http: PublishPipeline; received: Buffer[] } {
  const stats = new Stats();
  const received: Buffer[] = [];
  bus.setListener({ message: (_c, payload) => received.push(payload), lost: () => undefined, readiness: () => undefined });
  bus.subscribe('news');
  const ctx = { bus, stats, maxMessageBytes };
  return { stats, ws: new PublishPipeline(ctx, 'ws'), http: new PublishPipeline(ctx, 'http'), received };
}

function refused(result: ReturnType<PublishPipeline['publishAwaited']>): PublishRefused {
  assert.ok(!isPending(result), 'refused before the bus');
  return result;
}

const writer: Grant = { ...OPEN_GRANT, publish: ChannelPatterns.parse(['news'], 'publish') as ChannelPatterns };

/** A bus that takes a publish and then fails it, in a later turn, like RedisBus when its batch fails. */
function failingBus(sent: boolean): Bus {
  const bus = new MemoryBus();
  bus.publish = <T>(_channel: string, _payload: Buffer, receipt: PublishReceipt<T>, token: T) => {
    setImmediate(() => receipt.settled(token, new BusUnavailableError(sent ? 'Redis did not confirm' : undefined, sent)));
    return null;
  };
  return bus;
}

/** What a transport's receipt does (connection.ts): hands the bus's answer to the pipeline, records what it made of it. */
class Answers implements PublishReceipt<number> {
  readonly answers: [number, PublishRefused | null][] = [];
  constructor(private readonly pipeline: () => PublishPipeline) {}
  settled(token: number, err: BusUnavailableError | null): void {
    this.answers.push([token, this.pipeline().settled(err)]);
  }
}

describe('PublishPipeline', () => {
  test('accepted: the encoded message reaches the bus, counted for its source only', async () => {
    const { stats, ws, http, received } = setup();
    const result = ws.publishAwaited(writer, { channel: 'news', data: { a: 1 } });
    assert.ok(isPending(result));
    assert.equal(await result, null);
    assert.deepEqual(JSON.parse(received[0]!.toString()), { op: 'message', channel: 'news', data: { a: 1 } });
    assert.deepEqual(stats.publishesAccepted, { ws: 1, http: 0 });
    assert.equal(await http.publishAwaited(writer, { channel: 'news', data: 2 }), null);
    assert.deepEqual(stats.publishesAccepted, { ws: 1, http: 1 });
  });

  test('each refusal before the bus: its entry, counted by reason, nothing published', () => {
    const { stats, ws, http, received } = setup();
    const cases: [PublishRefused, object][] = [
      [refused(http.publishAwaited(writer, parsePublishBody('{"channel":'))), Refusal.InvalidJson],
      [refused(http.publishAwaited(writer, parsePublishBody('{"channel":"bad name","data":1}'))), Refusal.InvalidChannel],
      [refused(http.publishAwaited(writer, parsePublishBody('{"channel":"news"}'))), Refusal.InvalidMessage],
      [refused(ws.publishAwaited(writer, parseCommand('{"op":"publish","channel":"news"}') as ProtocolError)), Refusal.InvalidMessage],
      [refused(ws.publishAwaited(writer, { channel: 'other', data: 1 })), Refusal.PublishForbidden],
      [refused(ws.publishAwaited(writer, { channel: 'news', data: 'x'.repeat(300) })), Refusal.MessageTooLarge],
      [refused(ws.publishAwaited(writer, { channel: 'news', data: 1 }, true)), Refusal.TooManyPending],
    ];
    for (const [result, entry] of cases) assert.equal(result.refusal, entry);
    assert.equal(received.length, 0);
    assert.deepEqual(stats.publishesRejected.http, { ...zero(), invalid: 3 });
    assert.deepEqual(stats.publishesRejected.ws, { ...zero(), invalid: 1, forbidden: 1, too_large: 1, too_many_pending: 1 });
  });

  test('order: permission before encoding and size, the caller\'s cap last', () => {
    const { ws } = setup();
    assert.equal(refused(ws.publishAwaited(writer, { channel: 'other', data: 'x'.repeat(300) }, true)).refusal, Refusal.PublishForbidden);
    assert.equal(refused(ws.publishAwaited(writer, { channel: 'news', data: 'x'.repeat(300) }, true)).refusal, Refusal.MessageTooLarge);
  });

  test('data nested too deeply to encode is invalid_message', () => {
    const { ws } = setup();
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    assert.equal(refused(ws.publishAwaited(OPEN_GRANT, { channel: 'news', data: deep })).refusal, Refusal.InvalidMessage);
  });

  test('the bus refuses: bus_unavailable when not sent, bus_unconfirmed when sent, chosen by err.sent', async () => {
    for (const [sent, entry, reason] of [
      [false, Refusal.BusUnavailable, 'bus_unavailable'],
      [true, Refusal.BusUnconfirmed, 'bus_unconfirmed'],
    ] as const) {
      const { stats, http } = setup(failingBus(sent));
      const result = http.publishAwaited(OPEN_GRANT, { channel: 'news', data: 1 });
      assert.ok(isPending(result));
      const outcome = await result;
      assert.equal(outcome?.refusal, entry);
      assert.equal(outcome?.refusal.status, 503);
      assert.equal(stats.publishesRejected.http[reason], 1);
      assert.equal(stats.publishesAccepted.http, 0);
    }
  });

  test('a bus that refuses at once: answered at once, the receipt never called, counted as not sent', async () => {
    const bus = new MemoryBus();
    await bus.close(); // a closed bus refuses, certainly not sent
    const { stats, ws } = setup(bus);
    const answers = new Answers(() => ws);
    const result = ws.publish(writer, { channel: 'news', data: 1 }, false, answers, 1);
    assert.equal(result?.refusal, Refusal.BusUnavailable);
    assert.equal(stats.publishesRejected.ws.bus_unavailable, 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(answers.answers, []);
  });

  test('with a receipt: taken (null), settled in a later turn on the receipt with its token, in order, counted once each', async () => {
    const { stats, ws, received } = setup();
    const answers = new Answers(() => ws);
    for (let i = 0; i < 3; i++) assert.equal(ws.publish(writer, { channel: 'news', data: i }, false, answers, i), null);
    assert.equal(received.length, 3, 'the memory bus delivers at once');
    assert.deepEqual(answers.answers, [], 'not settled during publish()');
    assert.equal(stats.publishesAccepted.ws, 0, 'counted when settled');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(answers.answers, [[0, null], [1, null], [2, null]]);
    assert.equal(stats.publishesAccepted.ws, 3);
  });

  test('with a receipt: a failure the bus settles later is the refusal the receipt gets, counted by err.sent', async () => {
    const { stats, ws } = setup(failingBus(true));
    const answers = new Answers(() => ws);
    assert.equal(ws.publish(writer, { channel: 'news', data: 1 }, false, answers, 7), null);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(answers.answers.length, 1);
    assert.equal(answers.answers[0]![0], 7);
    assert.equal(answers.answers[0]![1]?.refusal, Refusal.BusUnconfirmed);
    assert.equal(stats.publishesRejected.ws.bus_unconfirmed, 1);
  });

  test('with a receipt: no Promise is created for a publish, from validation to its settle', async () => {
    const { stats, ws } = setup();
    const answers = new Answers(() => ws);
    ws.publish(writer, { channel: 'news', data: 0 }, false, answers, 0); // warm-up: lazy module state
    const created = await gatewayPromisesDuring(() => {
      for (let i = 1; i <= 100; i++) ws.publish(writer, { channel: 'news', data: i }, false, answers, i);
    }, () => answers.answers.length === 101);
    assert.equal(answers.answers.length, 101, 'all settled within the window');
    assert.equal(stats.publishesAccepted.ws, 101);
    assert.equal(created, 0);
    // The awaited variant, for contrast, makes one per publish: the count above can see them.
    const awaited = await gatewayPromisesDuring(() => {
      for (let i = 0; i < 10; i++) void ws.publishAwaited(writer, { channel: 'news', data: i });
    });
    assert.ok(awaited >= 10, `the hook counts Promises (${awaited})`);
  });

  test('refuse() counts a refusal the transport decided', () => {
    const { stats, http } = setup();
    assert.deepEqual(http.refuse(Refusal.OriginForbidden), { refusal: Refusal.OriginForbidden });
    assert.deepEqual(http.refuse(Refusal.Unauthorized, 'wrong API key'), { refusal: Refusal.Unauthorized, detail: 'wrong API key' });
    assert.equal(stats.publishesRejected.http.forbidden, 1);
    assert.equal(stats.publishesRejected.http.unauthorized, 1);
  });
});

function zero(): Record<string, number> {
  return { ...new Stats().publishesRejected.http };
}

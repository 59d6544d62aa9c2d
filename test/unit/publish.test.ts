// The one publish pipeline with the memory bus and a bus that fails: every outcome, its registry
// entry, and what is counted under which source and reason.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChannelPatterns, type Grant, OPEN_GRANT } from '../../services/gateway/src/auth.js';
import { type Bus, BusUnavailableError } from '../../services/gateway/src/bus/bus.js';
import { MemoryBus } from '../../services/gateway/src/bus/memory.js';
import { Refusal } from '../../services/gateway/src/codes.js';
import { type ProtocolError, parseCommand, parsePublishBody } from '../../services/gateway/src/protocol.js';
import { PublishPipeline, type PublishRefused, isPending } from '../../services/gateway/src/publish.js';
import { Stats } from '../../services/gateway/src/stats.js';

function setup(bus: Bus = new MemoryBus(), maxMessageBytes = 200): { stats: Stats; ws: PublishPipeline; http: PublishPipeline; received: Buffer[] } {
  const stats = new Stats();
  const received: Buffer[] = [];
  bus.setListener({ message: (_c, payload) => received.push(payload), lost: () => undefined, readiness: () => undefined });
  bus.subscribe('news');
  const ctx = { bus, stats, maxMessageBytes };
  return { stats, ws: new PublishPipeline(ctx, 'ws'), http: new PublishPipeline(ctx, 'http'), received };
}

function refused(result: ReturnType<PublishPipeline['publish']>): PublishRefused {
  assert.ok(!isPending(result), 'refused before the bus');
  return result;
}

const writer: Grant = { ...OPEN_GRANT, publish: ChannelPatterns.parse(['news'], 'publish') as ChannelPatterns };

/** A bus whose publish rejects like RedisBus does. */
function failingBus(sent: boolean): Bus {
  const bus = new MemoryBus();
  bus.publish = () => Promise.reject(new BusUnavailableError(sent ? 'Redis did not confirm' : undefined, sent));
  return bus;
}

describe('PublishPipeline', () => {
  test('accepted: the encoded message reaches the bus, counted for its source only', async () => {
    const { stats, ws, http, received } = setup();
    const result = ws.publish(writer, { channel: 'news', data: { a: 1 } });
    assert.ok(isPending(result));
    assert.equal(await result, null);
    assert.deepEqual(JSON.parse(received[0]!.toString()), { op: 'message', channel: 'news', data: { a: 1 } });
    assert.deepEqual(stats.publishesAccepted, { ws: 1, http: 0 });
    assert.equal(await http.publish(writer, { channel: 'news', data: 2 }), null);
    assert.deepEqual(stats.publishesAccepted, { ws: 1, http: 1 });
  });

  test('each refusal before the bus: its entry, counted by reason, nothing published', () => {
    const { stats, ws, http, received } = setup();
    const cases: [PublishRefused, object][] = [
      [refused(http.publish(writer, parsePublishBody('{"channel":'))), Refusal.InvalidJson],
      [refused(http.publish(writer, parsePublishBody('{"channel":"bad name","data":1}'))), Refusal.InvalidChannel],
      [refused(http.publish(writer, parsePublishBody('{"channel":"news"}'))), Refusal.InvalidMessage],
      [refused(ws.publish(writer, parseCommand('{"op":"publish","channel":"news"}') as ProtocolError)), Refusal.InvalidMessage],
      [refused(ws.publish(writer, { channel: 'other', data: 1 })), Refusal.PublishForbidden],
      [refused(ws.publish(writer, { channel: 'news', data: 'x'.repeat(300) })), Refusal.MessageTooLarge],
      [refused(ws.publish(writer, { channel: 'news', data: 1 }, true)), Refusal.TooManyPending],
    ];
    for (const [result, entry] of cases) assert.equal(result.refusal, entry);
    assert.equal(received.length, 0);
    assert.deepEqual(stats.publishesRejected.http, { ...zero(), invalid: 3 });
    assert.deepEqual(stats.publishesRejected.ws, { ...zero(), invalid: 1, forbidden: 1, too_large: 1, too_many_pending: 1 });
  });

  test('order: permission before encoding and size, the caller\'s cap last', () => {
    const { ws } = setup();
    assert.equal(refused(ws.publish(writer, { channel: 'other', data: 'x'.repeat(300) }, true)).refusal, Refusal.PublishForbidden);
    assert.equal(refused(ws.publish(writer, { channel: 'news', data: 'x'.repeat(300) }, true)).refusal, Refusal.MessageTooLarge);
  });

  test('data nested too deeply to encode is invalid_message', () => {
    const { ws } = setup();
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    assert.equal(refused(ws.publish(OPEN_GRANT, { channel: 'news', data: deep })).refusal, Refusal.InvalidMessage);
  });

  test('the bus refuses: bus_unavailable when not sent, bus_unconfirmed when sent, chosen by err.sent', async () => {
    for (const [sent, entry, reason] of [
      [false, Refusal.BusUnavailable, 'bus_unavailable'],
      [true, Refusal.BusUnconfirmed, 'bus_unconfirmed'],
    ] as const) {
      const { stats, http } = setup(failingBus(sent));
      const result = http.publish(OPEN_GRANT, { channel: 'news', data: 1 });
      assert.ok(isPending(result));
      const outcome = await result;
      assert.equal(outcome?.refusal, entry);
      assert.equal(outcome?.refusal.status, 503);
      assert.equal(stats.publishesRejected.http[reason], 1);
      assert.equal(stats.publishesAccepted.http, 0);
    }
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

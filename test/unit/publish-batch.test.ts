// The batch core (publish-batch.ts) under mocked setImmediate, and its Redis shell
// (batch-writer.ts) with a fake send: one write per turn, the caps, order, and every entry
// settled once with the batch's outcome.
import assert from 'node:assert/strict';
import { type TestContext, describe, test } from 'node:test';
import { NOT_SENT, RedisBatchWriter, UNCONFIRMED } from '../../services/gateway/src/bus/batch-writer.js';
import { BusUnavailableError, type PublishReceipt } from '../../services/gateway/src/bus/bus.js';
import { type BatchWriter, PublishBatch, PublishBatcher } from '../../services/gateway/src/bus/publish-batch.js';

/** A receipt object as the bus sees it. */
function receipt(into: [string, BusUnavailableError | null][]): PublishReceipt<string> {
  return { settled: (token, err) => into.push([token, err]) };
}

/** Records each batch written (its channels) and settles it at once, as a shell might. */
class Recorder implements BatchWriter {
  readonly written: string[][] = [];
  write(batch: PublishBatch): void {
    this.written.push([...batch.channels]);
    batch.settle(null);
  }
}

const msg = (s: string): Buffer => Buffer.from(s);

function immediates(t: TestContext): { count: () => number } {
  t.mock.timers.enable({ apis: ['setImmediate'] });
  const spy = t.mock.method(globalThis, 'setImmediate');
  return { count: () => spy.mock.callCount() };
}

describe('PublishBatcher', () => {
  test('the publishes of one turn: one setImmediate, one write at the turn\'s end, in order; nothing happens after', (t) => {
    const timers = immediates(t);
    const writer = new Recorder();
    const settled: [string, BusUnavailableError | null][] = [];
    const batcher = new PublishBatcher(writer);
    for (const c of ['a', 'b', 'a']) batcher.add(c, msg(c), receipt(settled), c);
    assert.equal(timers.count(), 1, 'one flush scheduled per turn');
    assert.deepEqual(writer.written, [], 'nothing written during add');
    assert.deepEqual(settled, [], 'nothing settled during add');
    t.mock.timers.tick(0);
    assert.deepEqual(writer.written, [['a', 'b', 'a']]);
    assert.deepEqual(settled, [['a', null], ['b', null], ['a', null]]);
    t.mock.timers.tick(0);
    assert.deepEqual(writer.written.length, 1, 'no second write');
    batcher.add('c', msg('c'), receipt(settled), 'c');
    assert.equal(timers.count(), 2, 'the next turn schedules its own flush');
    t.mock.timers.tick(0);
    assert.deepEqual(writer.written, [['a', 'b', 'a'], ['c']]);
  });

  test('the count cap splits the turn into batches, written in order at the flush, never during add', (t) => {
    const timers = immediates(t);
    const writer = new Recorder();
    const settled: [string, BusUnavailableError | null][] = [];
    const batcher = new PublishBatcher(writer, { maxCount: 2, maxBytes: 1 << 20 });
    for (const c of ['1', '2', '3', '4', '5']) batcher.add(c, msg(c), receipt(settled), c);
    assert.deepEqual(writer.written, []);
    assert.equal(timers.count(), 1);
    t.mock.timers.tick(0);
    assert.deepEqual(writer.written, [['1', '2'], ['3', '4'], ['5']]);
    assert.deepEqual(settled.map(([token]) => token), ['1', '2', '3', '4', '5']);
  });

  test('the byte cap: a batch closes once its messages reach maxBytes', (t) => {
    immediates(t);
    const writer = new Recorder();
    const batcher = new PublishBatcher(writer, { maxCount: 100, maxBytes: 10 });
    const settled: [string, BusUnavailableError | null][] = [];
    for (const c of ['a', 'b', 'c']) batcher.add(c, Buffer.alloc(6), receipt(settled), c);
    t.mock.timers.tick(0);
    assert.deepEqual(writer.written, [['a', 'b'], ['c']]);
  });

  test('flush() writes what is queued now (the bus closing); the scheduled flush then finds nothing', (t) => {
    immediates(t);
    const writer = new Recorder();
    const batcher = new PublishBatcher(writer);
    batcher.add('a', msg('a'), receipt([]), 'a');
    batcher.flush();
    assert.deepEqual(writer.written, [['a']]);
    t.mock.timers.tick(0);
    assert.deepEqual(writer.written, [['a']]);
  });
});

describe('PublishBatch', () => {
  test('settle: each entry once, with its own token and the batch\'s one outcome; a second settle is ignored', () => {
    const batch = new PublishBatch();
    const first: [string, BusUnavailableError | null][] = [];
    const second: [string, BusUnavailableError | null][] = [];
    batch.push('a', msg('xx'), receipt(first), 't1');
    batch.push('b', msg('yyy'), receipt(second), 't2');
    batch.push('a', msg('z'), receipt(first), 't3');
    assert.equal(batch.length, 3);
    assert.equal(batch.bytes, 6);
    const err = new BusUnavailableError('x', true);
    batch.settle(err);
    batch.settle(null);
    assert.deepEqual(first, [['t1', err], ['t3', err]]);
    assert.deepEqual(second, [['t2', err]]);
  });

  test('runsBy: cut where the key changes, publish order kept across and within runs; itself when one key', () => {
    const batch = new PublishBatch();
    const settled: [string, BusUnavailableError | null][] = [];
    for (const c of ['a1', 'a2', 'b1', 'a3', 'c1', 'c2']) batch.push(c, msg(c), receipt(settled), c);
    const runs = batch.runsBy((c) => c.charCodeAt(0));
    assert.deepEqual(runs.map((r) => r.channels), [['a1', 'a2'], ['b1'], ['a3'], ['c1', 'c2']]);
    assert.deepEqual(runs.map((r) => r.messages.map(String)), [['a1', 'a2'], ['b1'], ['a3'], ['c1', 'c2']]);
    for (const r of runs) r.settle(null);
    assert.deepEqual(settled.map(([token]) => token), ['a1', 'a2', 'b1', 'a3', 'c1', 'c2']);
    const one = new PublishBatch();
    one.push('a1', msg('a'), receipt([]), 'x');
    one.push('a2', msg('a'), receipt([]), 'y');
    assert.deepEqual(one.runsBy(() => 7), [one]);
  });
});

describe('RedisBatchWriter', () => {
  function batchOf(n: number, settled: [string, BusUnavailableError | null][]): PublishBatch {
    const batch = new PublishBatch();
    for (let i = 0; i < n; i++) batch.push(`c${i}`, msg(`m${i}`), receipt(settled), `t${i}`);
    return batch;
  }

  test('not writable: every entry fails as certainly not sent, nothing is sent', () => {
    const settled: [string, BusUnavailableError | null][] = [];
    let sends = 0;
    const writer = new RedisBatchWriter(async () => void sends++, () => false);
    writer.write(batchOf(2, settled));
    assert.equal(sends, 0);
    assert.deepEqual(settled.map(([token]) => token), ['t0', 't1']);
    for (const [, err] of settled) {
      assert.ok(err instanceof BusUnavailableError);
      assert.equal(err.sent, false);
      assert.equal(err.message, NOT_SENT);
    }
  });

  test('the reply failed: every entry fails as sent, unconfirmed (part of the script may have run)', async () => {
    const settled: [string, BusUnavailableError | null][] = [];
    const writer = new RedisBatchWriter(() => Promise.reject(new Error('Command timed out')), () => true);
    writer.write(batchOf(3, settled));
    assert.equal(settled.length, 0, 'settled when Redis answers, not during write');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled.length, 3);
    for (const [, err] of settled) {
      assert.ok(err instanceof BusUnavailableError);
      assert.equal(err.sent, true);
      assert.equal(err.message, `${UNCONFIRMED} (Command timed out)`);
    }
  });

  test('the reply came: every entry taken, in order; the batch is sent once', async () => {
    const settled: [string, BusUnavailableError | null][] = [];
    const sent: string[][] = [];
    const writer = new RedisBatchWriter(async (batch) => void sent.push([...batch.channels]), () => true);
    writer.write(batchOf(3, settled));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sent, [['c0', 'c1', 'c2']]);
    assert.deepEqual(settled, [['t0', null], ['t1', null], ['t2', null]]);
  });
});

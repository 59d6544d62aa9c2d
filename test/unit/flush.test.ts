// FlushScheduler: one deferred run per turn for everything scheduled in it, lists swapped between
// turns, a throwing item reported without stopping the batch. The test owns the deferral, so a
// "turn" ends exactly when it says.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FlushScheduler, type Flushable } from '../../services/gateway/src/flush.js';

class Item implements Flushable {
  flushes = 0;
  fault: Error | null = null;
  /** Runs inside flushScheduled(), e.g. to schedule again. */
  during: (() => void) | null = null;

  constructor(
    readonly name: string,
    private readonly order: string[],
  ) {}

  flushScheduled(): void {
    this.order.push(this.name);
    this.during?.();
    if (this.fault !== null) throw this.fault;
    this.flushes++;
  }
}

function setup(): {
  scheduler: FlushScheduler<Item>;
  turns: (() => void)[];
  errors: [Item, unknown][];
  order: string[];
  item(name: string): Item;
} {
  const turns: (() => void)[] = [];
  const errors: [Item, unknown][] = [];
  const order: string[] = [];
  const scheduler = new FlushScheduler<Item>(
    (item, err) => errors.push([item, err]),
    (run) => turns.push(run),
  );
  return { scheduler, turns, errors, order, item: (name) => new Item(name, order) };
}

/** Ends the oldest pending turn. */
function endTurn(turns: (() => void)[]): void {
  const run = turns.shift();
  assert.ok(run !== undefined, 'a turn was armed');
  run();
}

describe('FlushScheduler', () => {
  test('defers once per turn however many items are scheduled, and flushes them in order', { timeout: 5000 }, () => {
    const { scheduler, turns, order, item } = setup();
    const [a, b, c] = [item('a'), item('b'), item('c')];
    scheduler.schedule(a);
    scheduler.schedule(b);
    scheduler.schedule(c);
    assert.equal(turns.length, 1, 'one deferred run for the turn');
    assert.equal(scheduler.size, 3);
    assert.deepEqual(order, [], 'nothing flushed during the turn');
    endTurn(turns);
    assert.deepEqual(order, ['a', 'b', 'c']);
    assert.equal(scheduler.size, 0);
    assert.equal(turns.length, 0, 'an idle scheduler arms nothing');
  });

  test('the next turn arms again and flushes only what it scheduled (the lists were swapped, not lost)', { timeout: 5000 }, () => {
    const { scheduler, turns, order, item } = setup();
    const [a, b] = [item('a'), item('b')];
    scheduler.schedule(a);
    scheduler.schedule(b);
    endTurn(turns);
    for (let turn = 0; turn < 3; turn++) {
      scheduler.schedule(b);
      assert.equal(turns.length, 1);
      endTurn(turns);
    }
    assert.deepEqual(order, ['a', 'b', 'b', 'b', 'b']);
    assert.equal(a.flushes, 1);
    assert.equal(b.flushes, 4);
  });

  test('an item scheduled while the batch flushes waits for the next turn', { timeout: 5000 }, () => {
    const { scheduler, turns, order, item } = setup();
    const [a, b] = [item('a'), item('b')];
    a.during = () => {
      a.during = null;
      scheduler.schedule(b);
      scheduler.schedule(a);
    };
    scheduler.schedule(a);
    endTurn(turns);
    assert.deepEqual(order, ['a'], 'not flushed within the same run');
    assert.equal(turns.length, 1, 'the next turn is armed');
    endTurn(turns);
    assert.deepEqual(order, ['a', 'b', 'a']);
  });

  test('a throwing item is reported once and the rest of the batch still flushes', { timeout: 5000 }, () => {
    const { scheduler, turns, errors, order, item } = setup();
    const [a, b, c] = [item('a'), item('b'), item('c')];
    const fault = new Error('socket fault');
    b.fault = fault;
    for (const i of [a, b, c]) scheduler.schedule(i);
    endTurn(turns);
    assert.deepEqual(order, ['a', 'b', 'c']);
    assert.equal(errors.length, 1);
    assert.strictEqual(errors[0]![0], b);
    assert.strictEqual(errors[0]![1], fault);
    assert.equal(a.flushes + c.flushes, 2);
    // The scheduler keeps working after a fault.
    b.fault = null;
    scheduler.schedule(b);
    endTurn(turns);
    assert.equal(b.flushes, 1);
    assert.equal(errors.length, 1);
  });

  test('by default it runs after the current turn, on setImmediate', { timeout: 5000 }, async () => {
    const order: string[] = [];
    const scheduler = new FlushScheduler<Item>(() => assert.fail('no fault expected'));
    scheduler.schedule(new Item('a', order));
    await Promise.resolve();
    assert.deepEqual(order, [], 'not in a microtask of this turn');
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.deepEqual(order, ['a']);
  });
});

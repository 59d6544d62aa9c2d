// ExpirySchedule: bucketed deadlines behind one timer, under mock timers (setTimeout and Date), so
// "nothing expired yet" is proven without waiting.
import assert from 'node:assert/strict';
import { describe, mock, test, type TestContext } from 'node:test';
import { ExpirySchedule } from '../../services/gateway/src/expiry.js';

const T0 = 1_767_225_600_000; // a whole second, as JWT exps are

function setup(t: TestContext, resolutionMs = 1000): { schedule: ExpirySchedule<string>; expired: string[]; timers: () => number } {
  // setTimeout is wrapped to count the timers armed: one per wait, never one per item.
  let armed = 0;
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: T0 });
  const mocked = globalThis.setTimeout;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    armed++;
    return mocked(...args);
  }) as typeof setTimeout;
  const expired: string[] = [];
  const schedule = new ExpirySchedule<string>(resolutionMs, (item) => expired.push(item));
  t.after(() => {
    schedule.stop();
    globalThis.setTimeout = mocked;
    mock.timers.reset();
  });
  return { schedule, expired, timers: () => armed };
}

describe('ExpirySchedule', () => {
  test('an item expires at its deadline, not a millisecond before', { timeout: 5000 }, (t) => {
    const { schedule, expired } = setup(t);
    schedule.add('a', T0 + 4000);
    mock.timers.tick(3999);
    assert.deepEqual(expired, []);
    assert.equal(schedule.size, 1);
    mock.timers.tick(1);
    assert.deepEqual(expired, ['a']);
    assert.equal(schedule.size, 0, 'it left the schedule before expire() was called');
  });

  test('deadlines round up to the resolution: late by less than it, never early', { timeout: 5000 }, (t) => {
    const { schedule, expired } = setup(t);
    schedule.add('a', T0 + 1001);
    schedule.add('b', T0 + 1999);
    schedule.add('c', T0 + 2000);
    mock.timers.tick(1999);
    assert.deepEqual(expired, []);
    mock.timers.tick(1);
    assert.deepEqual(expired.sort(), ['a', 'b', 'c'], 'one bucket: 2000');
  });

  test('many items, few buckets: one timer per wait, buckets expire in order', { timeout: 5000 }, (t) => {
    const { schedule, expired, timers } = setup(t);
    // 3,000 items over three seconds, added out of order.
    for (let i = 0; i < 3000; i++) schedule.add(`i${i}`, T0 + 1000 * (3 - (i % 3)));
    assert.equal(schedule.size, 3000);
    assert.ok(timers() <= 3, `${timers()} timers armed for 3,000 items`);
    mock.timers.tick(1000);
    assert.equal(expired.length, 1000);
    assert.ok(expired.every((e) => Number(e.slice(1)) % 3 === 2), 'the earliest bucket first');
    mock.timers.tick(1000);
    assert.equal(expired.length, 2000);
    mock.timers.tick(1000);
    assert.equal(expired.length, 3000);
    assert.ok(timers() <= 6, `${timers()} timers armed in all`);
    assert.equal(schedule.size, 0);
  });

  test('a deleted item never expires; the last one deleted disarms the timer', { timeout: 5000 }, (t) => {
    const { schedule, expired } = setup(t);
    schedule.add('a', T0 + 1000);
    schedule.add('b', T0 + 1000);
    schedule.add('c', T0 + 5000);
    schedule.delete('a');
    schedule.delete('nobody');
    mock.timers.tick(1000);
    assert.deepEqual(expired, ['b']);
    schedule.delete('c');
    assert.equal(schedule.size, 0);
    mock.timers.tick(60_000);
    assert.deepEqual(expired, ['b']);
  });

  test('an earlier item re-arms the timer earlier; adding an item again moves it', { timeout: 5000 }, (t) => {
    const { schedule, expired } = setup(t);
    schedule.add('late', T0 + 10_000);
    schedule.add('early', T0 + 2000);
    schedule.add('moved', T0 + 3000);
    schedule.add('moved', T0 + 20_000);
    mock.timers.tick(2000);
    assert.deepEqual(expired, ['early']);
    mock.timers.tick(8000);
    assert.deepEqual(expired, ['early', 'late'], 'moved is not due at its old deadline');
    mock.timers.tick(10_000);
    assert.deepEqual(expired, ['early', 'late', 'moved']);
  });

  test('a deadline already past expires at the next timer run; Infinity is never scheduled', { timeout: 5000 }, (t) => {
    const { schedule, expired } = setup(t);
    schedule.add('past', T0 - 5000);
    schedule.add('never', Number.POSITIVE_INFINITY);
    assert.equal(schedule.size, 1);
    mock.timers.tick(0);
    assert.deepEqual(expired, ['past']);
  });

  test('a deadline past 2^31 ms waits in steps and still expires on time', { timeout: 5000 }, (t) => {
    const { schedule, expired } = setup(t);
    const sixtyDays = 60 * 86_400_000;
    schedule.add('far', T0 + sixtyDays);
    mock.timers.tick(2 ** 31 - 1);
    assert.deepEqual(expired, [], 'woken at the longest delay, nothing due');
    mock.timers.tick(sixtyDays - (2 ** 31 - 1) - 1);
    assert.deepEqual(expired, []);
    mock.timers.tick(1);
    assert.deepEqual(expired, ['far']);
  });

  test('expire() may delete another item of the same bucket: that one does not expire', { timeout: 5000 }, (t) => {
    const expired: string[] = [];
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: T0 });
    t.after(() => mock.timers.reset());
    const schedule: ExpirySchedule<string> = new ExpirySchedule<string>(1000, (item) => {
      expired.push(item);
      schedule.delete(item === 'a' ? 'b' : 'a');
    });
    schedule.add('a', T0 + 1000);
    schedule.add('b', T0 + 1000);
    schedule.add('c', T0 + 2000);
    mock.timers.tick(1000);
    assert.equal(expired.length, 1, `${expired.join()}: the first one's expire() took the other out`);
    assert.equal(schedule.size, 1);
    mock.timers.tick(1000);
    assert.deepEqual(expired.slice(1), ['c'], 'the schedule goes on');
  });

  test('connections that come and go with the same deadline leave nothing behind', { timeout: 5000 }, (t) => {
    const { schedule, expired, timers } = setup(t);
    schedule.add('stays', T0 + 3_600_000);
    const before = timers();
    for (let i = 0; i < 10_000; i++) {
      schedule.add(`c${i}`, T0 + 1000 * (1 + (i % 50)));
      schedule.delete(`c${i}`);
    }
    assert.equal(schedule.size, 1);
    // The timer stays armed for the first (emptied) bucket: no later add is earlier, so none re-arms it.
    assert.equal(timers() - before, 1);
    const heap = (schedule as unknown as { heap: number[] }).heap;
    assert.ok(heap.length <= 2 + 16 + 1, `${heap.length} times left in the heap`);
    mock.timers.tick(3_600_000);
    assert.deepEqual(expired, ['stays']);
  });

  test('stop() forgets everything and leaves no timer', { timeout: 5000 }, (t) => {
    const { schedule, expired } = setup(t);
    schedule.add('a', T0 + 1000);
    schedule.stop();
    assert.equal(schedule.size, 0);
    mock.timers.tick(10_000);
    assert.deepEqual(expired, []);
  });
});

// The heartbeat's slices: how an interval is split, and the slices' rotation and balance.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_SLICES, MIN_SLICE_MS, Slices, sliceCount } from '../../services/gateway/src/heartbeat.js';

describe('sliceCount', () => {
  test('the default 25 s interval: the most slices, ticks of half a second', () => {
    assert.equal(sliceCount(25_000), MAX_SLICES);
    assert.equal(25_000 / sliceCount(25_000), 500);
  });

  test('always divides the interval exactly, with ticks of at least MIN_SLICE_MS', () => {
    for (const interval of [100, 101, 250, 300, 999, 1000, 1234, 5000, 7919, 30_000, 3_600_000]) {
      const k = sliceCount(interval);
      assert.ok(Number.isInteger(k) && k >= 1 && k <= MAX_SLICES, `${interval}: ${k}`);
      assert.equal(interval % k, 0, `${interval} ms in ${k} slices`);
      assert.ok(k === 1 || interval / k >= MIN_SLICE_MS, `${interval}: ticks of ${interval / k} ms`);
    }
    assert.equal(sliceCount(300), 3);
    assert.equal(sliceCount(1000), 10);
    assert.equal(sliceCount(7919), 1, 'a prime interval is not split');
    assert.equal(sliceCount(199), 1);
  });
});

describe('Slices', () => {
  test('next() rotates through every slice; every item is in exactly one', () => {
    const slices = new Slices<number>(5);
    for (let i = 0; i < 1000; i++) slices.add(i);
    assert.equal(slices.size, 1000);
    const seen = new Map<number, number>();
    const sizes: number[] = [];
    for (let tick = 0; tick < 5; tick++) {
      const slice = slices.next();
      sizes.push(slice.size);
      for (const i of slice) seen.set(i, (seen.get(i) ?? 0) + 1);
    }
    assert.deepEqual(sizes, [200, 200, 200, 200, 200]);
    assert.equal(seen.size, 1000);
    assert.ok([...seen.values()].every((n) => n === 1));
    // The sixth tick is the first slice again.
    const again = slices.next();
    slices.next();
    assert.equal(again.size, 200);
  });

  test('stays even as items come and go: a newcomer fills the smallest slice', () => {
    const slices = new Slices<number>(4);
    for (let i = 0; i < 400; i++) slices.add(i);
    for (let i = 0; i < 400; i += 4) slices.delete(i); // empties one slice's worth from wherever they are
    for (let i = 400; i < 500; i++) slices.add(i);
    const sizes = [0, 1, 2, 3].map(() => slices.next().size);
    assert.equal(sizes.reduce((a, b) => a + b, 0), 400);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `sizes ${sizes.join()}`);
  });

  test('add is idempotent, delete of an unknown item is a no-op, and a deleted item is not visited', () => {
    const slices = new Slices<string>(2);
    slices.add('a');
    slices.add('a');
    slices.delete('nobody');
    assert.equal(slices.size, 1);
    slices.add('b');
    slices.delete('a');
    const visited = [...slices.next(), ...slices.next()];
    assert.deepEqual(visited, ['b']);
  });

  test('a newcomer is not in the slice visited next while slices are even', () => {
    const slices = new Slices<string>(3);
    slices.add('x');
    assert.equal(slices.next().size, 0, 'x went to the slice visited last');
  });

  test('refuses a slice count that is not a positive integer', () => {
    assert.throws(() => new Slices(0), /positive integer/);
    assert.throws(() => new Slices(2.5), /positive integer/);
  });
});

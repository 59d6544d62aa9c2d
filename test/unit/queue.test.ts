// BoundedQueue: a FIFO of frames bounded by count and bytes, on a ring that grows by doubling.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BoundedQueue, backlogBounds } from '../../services/gateway/src/queue.js';
import { mulberry32 } from '../helpers/random.js';

/** A frame whose first 4 bytes carry a sequence number, so order can be checked after the fact. */
function frame(seq: number, size = 8): Buffer {
  const buf = Buffer.alloc(Math.max(size, 4));
  buf.writeUInt32BE(seq, 0);
  return buf;
}

function seqOf(buf: Buffer | undefined): number {
  assert.ok(buf !== undefined, 'expected a frame, got undefined');
  return buf.readUInt32BE(0);
}

describe('BoundedQueue', () => {
  test('shift on an empty queue returns undefined', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(4, 1024);
    assert.equal(queue.shift(), undefined);
    assert.equal(queue.length, 0);
    assert.equal(queue.byteLength, 0);
    // Also after it has held something and been emptied again.
    queue.push(frame(1));
    queue.shift();
    assert.equal(queue.shift(), undefined);
    assert.equal(queue.length, 0);
  });

  test('is FIFO', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(10, 1024);
    for (let i = 0; i < 5; i++) queue.push(frame(i));
    const out: number[] = [];
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) out.push(seqOf(f));
    assert.deepEqual(out, [0, 1, 2, 3, 4]);
  });

  test('returns the very buffers pushed', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(4, 1024);
    const a = frame(1);
    const b = frame(2);
    queue.push(a);
    queue.push(b);
    assert.strictEqual(queue.shift(), a);
    assert.strictEqual(queue.shift(), b);
  });

  test('fits() is bounded by message count', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(3, 1_000_000);
    for (let i = 0; i < 3; i++) {
      assert.equal(queue.fits(1), true);
      queue.push(frame(i));
    }
    assert.equal(queue.fits(1), false, 'a fourth message must not fit');
    assert.equal(queue.fits(0), false, 'even an empty frame counts as a message');
    queue.shift();
    assert.equal(queue.fits(1), true);
  });

  test('fits() is bounded by bytes, inclusively', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(100, 100);
    assert.equal(queue.fits(100), true, 'exactly maxBytes fits an empty queue');
    assert.equal(queue.fits(101), false);
    queue.push(frame(0, 60));
    assert.equal(queue.fits(40), true, '60 + 40 = maxBytes fits');
    assert.equal(queue.fits(41), false);
    queue.push(frame(1, 40));
    assert.equal(queue.fits(0), true, 'a zero-byte frame still fits while under the count bound');
    assert.equal(queue.fits(1), false);
    queue.shift();
    assert.equal(queue.fits(60), true);
  });

  test('canEverFit() depends only on maxBytes', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(1, 100);
    assert.equal(queue.canEverFit(0), true);
    assert.equal(queue.canEverFit(100), true);
    assert.equal(queue.canEverFit(101), false);
    // A full queue does not change the answer: it is about an empty queue.
    queue.push(frame(0, 100));
    assert.equal(queue.fits(1), false);
    assert.equal(queue.canEverFit(100), true);
  });

  test('tracks length and byteLength through push and shift', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(10, 10_000);
    queue.push(frame(0, 10));
    queue.push(frame(1, 20));
    queue.push(frame(2, 30));
    assert.equal(queue.length, 3);
    assert.equal(queue.byteLength, 60);
    queue.shift();
    assert.equal(queue.length, 2);
    assert.equal(queue.byteLength, 50);
    queue.shift();
    queue.shift();
    assert.equal(queue.length, 0);
    assert.equal(queue.byteLength, 0);
  });

  test('clear() returns the discarded count and resets', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(10, 10_000);
    assert.equal(queue.clear(), 0, 'clearing an empty queue discards nothing');
    for (let i = 0; i < 7; i++) queue.push(frame(i, 100));
    queue.shift();
    assert.equal(queue.clear(), 6);
    assert.equal(queue.length, 0);
    assert.equal(queue.byteLength, 0);
    assert.equal(queue.shift(), undefined);
    assert.equal(queue.capacity, 0, 'memory is released');
    // Usable again, in order, from a fresh ring.
    queue.push(frame(42));
    queue.push(frame(43));
    assert.equal(seqOf(queue.shift()), 42);
    assert.equal(seqOf(queue.shift()), 43);
  });

  test('allocates nothing until first use, and never more than maxMessages', { timeout: 5000 }, () => {
    const small = new BoundedQueue(5, 1024);
    assert.equal(small.capacity, 0);
    small.push(frame(0));
    assert.equal(small.capacity, 5, 'initial ring is min(16, maxMessages)');

    const large = new BoundedQueue(100, 1_000_000);
    large.push(frame(0));
    assert.equal(large.capacity, 16);
  });

  test('keeps order when growing while the ring has wrapped', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(1000, 1_000_000);
    let next = 0;
    let expected = 0;
    // Move head to the middle of the 16-slot ring, then fill it so the contents wrap around.
    for (let i = 0; i < 10; i++) queue.push(frame(next++));
    for (let i = 0; i < 6; i++) assert.equal(seqOf(queue.shift()), expected++);
    while (queue.length < 16) queue.push(frame(next++));
    assert.equal(queue.capacity, 16);
    // One more push grows the ring and must unwrap it in order.
    queue.push(frame(next++));
    assert.equal(queue.capacity, 32);
    while (queue.length > 0) assert.equal(seqOf(queue.shift()), expected++);
    assert.equal(expected, next);
  });

  test('keeps order and bookkeeping across many interleaved pushes and shifts', { timeout: 5000 }, () => {
    const maxMessages = 100;
    const queue = new BoundedQueue(maxMessages, 1_000_000);
    const model: { seq: number; size: number }[] = [];
    const rand = mulberry32(0xc0ffee);
    const capacities = new Set<number>();
    let next = 0;
    let modelBytes = 0;
    for (let step = 0; step < 20_000; step++) {
      // Bias toward pushing early on so the ring grows to maxMessages, then churn around full.
      const pushBias = step < 5_000 ? 0.7 : 0.5;
      if (rand() < pushBias) {
        const size = 4 + Math.floor(rand() * 60);
        if (!queue.fits(size)) {
          assert.equal(model.length, maxMessages, 'only the count bound can refuse here');
          continue;
        }
        queue.push(frame(next, size));
        model.push({ seq: next, size });
        modelBytes += size;
        next++;
      } else {
        const got = queue.shift();
        const want = model.shift();
        if (want === undefined) {
          assert.equal(got, undefined);
        } else {
          assert.ok(got !== undefined);
          assert.equal(seqOf(got), want.seq);
          assert.equal(got.length, want.size);
          modelBytes -= want.size;
        }
      }
      assert.equal(queue.length, model.length);
      assert.equal(queue.byteLength, modelBytes);
      capacities.add(queue.capacity);
    }
    // The ring went through every size from 16 up to (and capped at) maxMessages.
    for (const size of [16, 32, 64, 100]) assert.ok(capacities.has(size), `ring reached capacity ${size}`);
    assert.ok(Math.max(...capacities) <= maxMessages);
    assert.ok(next > 5_000, 'the loop pushed many frames');
    // Drain what is left, still in order.
    for (const want of model) assert.equal(seqOf(queue.shift()), want.seq);
    assert.equal(queue.shift(), undefined);
    assert.equal(queue.byteLength, 0);
  });
});

describe('BoundedQueue.release', () => {
  test('drops the ring of an empty queue and keeps a non-empty one', { timeout: 5000 }, () => {
    const queue = new BoundedQueue(100, 1_000_000);
    queue.push(Buffer.alloc(10, 1));
    queue.release();
    assert.equal(queue.capacity, 16, 'a queue holding a frame keeps its ring');
    assert.equal(queue.shift()![0], 1);
    queue.release();
    assert.equal(queue.capacity, 0, 'an emptied queue holds no ring');
    queue.push(Buffer.alloc(10, 2));
    assert.equal(queue.shift()![0], 2, 'and works again after');
  });

  test('a ring released after it grew and wrapped starts again at its front', { timeout: 5000 }, () => {
    // Seen under load: a queue grown past 16 slots, drained with its head at slot 37, released by
    // the heartbeat; the next small ring was read at slot 37 and the flush threw.
    const queue = new BoundedQueue(1000, 1_000_000);
    for (let i = 0; i < 40; i++) queue.push(Buffer.alloc(1, i));
    for (let i = 0; i < 40; i++) queue.shift();
    queue.release();
    assert.equal(queue.capacity, 0);
    // Fewer than the new ring's 16 slots, so no growth re-bases the head.
    for (let i = 0; i < 5; i++) queue.push(Buffer.alloc(1, 100 + i));
    for (let i = 0; i < 5; i++) assert.equal(queue.shift()?.[0], 100 + i, 'in order, none missing');
    assert.equal(queue.shift(), undefined);
  });
});

describe('BoundedQueue.moveInto (the replay backlog topping up a send queue)', () => {
  test('moves frames in order while they fit, and leaves the rest in order', { timeout: 5000 }, () => {
    const backlog = new BoundedQueue(100, 1_000_000);
    for (let i = 1; i <= 10; i++) backlog.push(frame(i));
    const queue = new BoundedQueue(4, 1_000_000);
    queue.push(frame(0));
    assert.equal(backlog.moveInto(queue), 3, 'up to the count bound');
    assert.equal(queue.length, 4);
    assert.equal(backlog.length, 7);
    assert.equal(backlog.byteLength, 7 * 8);
    assert.equal(queue.byteLength, 4 * 8);
    assert.equal(backlog.moveInto(queue), 0, 'a full queue takes nothing');
    const out: number[] = [];
    while (queue.length > 0) out.push(seqOf(queue.shift()));
    assert.equal(backlog.moveInto(queue), 4);
    while (queue.length > 0) out.push(seqOf(queue.shift()));
    assert.equal(backlog.moveInto(queue), 3);
    while (queue.length > 0) out.push(seqOf(queue.shift()));
    assert.deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(backlog.length, 0);
    assert.equal(backlog.byteLength, 0);
    assert.equal(backlog.moveInto(queue), 0, 'an empty backlog moves nothing');
  });

  test('stops at the byte bound, and never skips a frame that does not fit for a smaller one behind it', { timeout: 5000 }, () => {
    const backlog = new BoundedQueue(100, 1_000_000);
    backlog.push(frame(1, 40));
    backlog.push(frame(2, 50));
    backlog.push(frame(3, 4));
    const queue = new BoundedQueue(100, 60);
    assert.equal(backlog.moveInto(queue), 1);
    assert.equal(queue.byteLength, 40);
    assert.equal(seqOf(queue.shift()), 1);
    assert.equal(backlog.moveInto(queue), 2);
    assert.equal(seqOf(queue.shift()), 2);
    assert.equal(seqOf(queue.shift()), 3);
  });

  test('an empty queue takes one frame bigger than its byte bound, so it cannot stall the backlog', { timeout: 5000 }, () => {
    const backlog = new BoundedQueue(100, 1_000_000);
    backlog.push(frame(1, 500));
    backlog.push(frame(2, 10));
    const queue = new BoundedQueue(100, 100);
    assert.equal(backlog.moveInto(queue), 1, 'the oversized frame alone');
    assert.equal(queue.length, 1);
    assert.equal(backlog.moveInto(queue), 0, 'nothing joins it past the bound');
    assert.equal(seqOf(queue.shift()), 1);
    assert.equal(backlog.moveInto(queue), 1);
    assert.equal(seqOf(queue.shift()), 2);
  });
});

describe('backlogBounds', () => {
  test('holds a whole replay of the largest messages and then a queue more', { timeout: 5000 }, () => {
    const bounds = backlogBounds(256, 1 << 20, 1000, 64 << 10);
    assert.equal(bounds.maxMessages, 1256);
    assert.ok(bounds.maxBytes >= 1000 * (64 << 10) + (1 << 20), 'a full replay of MAX_MESSAGE_BYTES messages fits behind a full queue');
    const backlog = new BoundedQueue(bounds.maxMessages, bounds.maxBytes);
    for (let i = 0; i < 1000; i++) {
      assert.equal(backlog.fits(64 << 10), true);
      backlog.push(Buffer.alloc(64 << 10));
    }
    assert.equal(backlog.fits(1 << 20), true, 'and a queue\'s worth of bytes after it');
  });

  test('grows with each input', { timeout: 5000 }, () => {
    const base = backlogBounds(10, 10_000, 100, 1000);
    assert.ok(backlogBounds(20, 10_000, 100, 1000).maxMessages > base.maxMessages);
    assert.ok(backlogBounds(10, 10_000, 200, 1000).maxMessages > base.maxMessages);
    assert.ok(backlogBounds(10, 20_000, 100, 1000).maxBytes > base.maxBytes);
    assert.ok(backlogBounds(10, 10_000, 200, 1000).maxBytes > base.maxBytes);
    assert.ok(backlogBounds(10, 10_000, 100, 2000).maxBytes > base.maxBytes);
  });
});

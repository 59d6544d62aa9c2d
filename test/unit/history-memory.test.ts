// The in-process history: the same semantics as the Redis scripts (offsets without holes, an
// epoch created by the first read or publish, the last HISTORY_SIZE messages readable, a new
// epoch after expiry, complete only when nothing is missing), with the clock passed in.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryHistory } from '../../services/gateway/src/bus/history-memory.js';
import { messageHead } from '../../services/gateway/src/bus/position.js';

const head = (data: unknown): Buffer => messageHead(Buffer.from(`{"op":"message","channel":"c","data":${JSON.stringify(data)}}`));

function history(size = 5, ttlMs = 1000): MemoryHistory {
  let n = 0;
  return new MemoryHistory({ size, ttlMs }, () => `E${++n}`);
}

describe('MemoryHistory', () => {
  test('offsets 1, 2, 3 per channel under one epoch; the client bytes carry the position', () => {
    const h = history();
    const a = h.publish('c', head(1), 0);
    const b = h.publish('c', head(2), 1);
    const other = h.publish('d', head(3), 2);
    assert.deepEqual(a.position, { offset: 1, epoch: 'E1' });
    assert.deepEqual(b.position, { offset: 2, epoch: 'E1' });
    assert.deepEqual(other.position, { offset: 1, epoch: 'E2' });
    assert.deepEqual(JSON.parse(b.bytes.toString()), { op: 'message', channel: 'c', data: 2, offset: 2, epoch: 'E1' });
  });

  test('a read creates the epoch with offset 0, and the first publish keeps it', () => {
    const h = history();
    assert.deepEqual(h.top('c', 0), { offset: 0, epoch: 'E1' });
    assert.deepEqual(h.top('c', 1), { offset: 0, epoch: 'E1' });
    assert.deepEqual(h.publish('c', head(1), 2).position, { offset: 1, epoch: 'E1' });
    const read = h.since('c', 0, 'E1', 10, 3);
    assert.equal(read.complete, true);
    assert.deepEqual(read.messages.map((m) => m.offset), [1]);
  });

  test('only the last HISTORY_SIZE messages are readable; complete needs every offset after since', () => {
    const h = history(5);
    for (let i = 1; i <= 12; i++) h.publish('c', head(i), i);
    const all = h.since('c', 0, 'E1', 100, 20);
    assert.deepEqual([all.top, all.epoch, all.complete], [12, 'E1', false]);
    assert.deepEqual(all.messages.map((m) => m.offset), [8, 9, 10, 11, 12]);
    assert.deepEqual(all.messages.map((m) => JSON.parse(m.bytes.toString()).data), [8, 9, 10, 11, 12]);
    assert.equal(h.since('c', 7, 'E1', 100, 20).complete, true);
    assert.equal(h.since('c', 6, 'E1', 100, 20).complete, false, 'offset 7 was trimmed');
    const limited = h.since('c', 7, 'E1', 3, 20);
    assert.deepEqual([limited.messages.map((m) => m.offset), limited.complete], [[8, 9, 10], false]);
    const foreign = h.since('c', 7, 'other', 100, 20);
    assert.deepEqual([foreign.messages.length, foreign.complete, foreign.epoch, foreign.top], [0, false, 'E1', 12]);
    const any = h.since('c', 10, null, 100, 20);
    assert.deepEqual([any.messages.map((m) => m.offset), any.complete], [[11, 12], true]);
    assert.deepEqual([h.since('c', 12, 'E1', 100, 20).complete, h.since('c', 13, 'E1', 100, 20).complete], [true, false]);
    assert.equal(h.since('c', 7, 'E1', 0, 20).messages.length, 0);
  });

  test('a channel expires ttl after its last publish (not after a read) and starts over under a new epoch', () => {
    const h = history(5, 1000);
    h.publish('c', head(1), 0);
    h.publish('c', head(2), 500);
    assert.deepEqual(h.top('c', 1400), { offset: 2, epoch: 'E1' }, 'a read does not extend the life');
    assert.deepEqual(h.top('c', 1500), { offset: 0, epoch: 'E2' }, 'expired at 500 + 1000');
    assert.deepEqual(h.since('c', 2, 'E1', 10, 1501).complete, false, 'the old epoch cannot recover');
    assert.deepEqual(h.top('c', 2499), { offset: 0, epoch: 'E2' });
    assert.deepEqual(h.publish('c', head(3), 2499).position, { offset: 1, epoch: 'E2' });
  });

  test('sweep forgets expired channels in expiry order and keeps the live ones', () => {
    const h = history(5, 1000);
    h.publish('a', head(1), 0);
    h.publish('b', head(1), 100);
    h.top('c', 200);
    h.publish('a', head(2), 300); // a moves behind b and c
    assert.equal(h.sweep(1099), 0);
    assert.equal(h.sweep(1100), 1, 'b');
    assert.equal(h.size, 2);
    assert.equal(h.sweep(1300), 2, 'c, then a');
    assert.equal(h.size, 0);
  });

  test('refuses a size below 1', () => {
    assert.throws(() => history(0));
  });
});

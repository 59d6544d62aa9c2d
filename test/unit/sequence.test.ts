// Bus envelope and sequence checks: gaps counted by number missing, duplicates refused, restarts
// and forgotten streams without false gaps, bounded state.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ENVELOPE_BYTES,
  envelopePayload,
  hasEnvelope,
  readOrigin,
  readSeq,
  readStream,
  writeEnvelope,
} from '../../services/gateway/src/bus/envelope.js';
import { SequenceStamper, SequenceTracker } from '../../services/gateway/src/bus/sequence.js';

function message(origin: number, stream: number, seq: number, body = '{}'): Buffer {
  const out = Buffer.alloc(ENVELOPE_BYTES + Buffer.byteLength(body));
  writeEnvelope(out, origin, stream, seq);
  out.write(body, ENVELOPE_BYTES);
  return out;
}

function tracker(maxOrigins?: number): { t: SequenceTracker; counts: { busGaps: number; busDuplicates: number } } {
  const counts = { busGaps: 0, busDuplicates: 0 };
  return { t: new SequenceTracker(counts, maxOrigins), counts };
}

describe('envelope', () => {
  test('round-trips 48-bit fields and exposes the payload as a view, not a copy', () => {
    const m = message(2 ** 48 - 1, 7, 2 ** 40 + 3, '{"op":"message"}');
    assert.ok(hasEnvelope(m));
    assert.equal(readOrigin(m), 2 ** 48 - 1);
    assert.equal(readStream(m), 7);
    assert.equal(readSeq(m), 2 ** 40 + 3);
    const payload = envelopePayload(m);
    assert.equal(payload.toString(), '{"op":"message"}');
    assert.equal(payload.buffer, m.buffer, 'same memory');
    assert.equal(payload.byteOffset, m.byteOffset + ENVELOPE_BYTES);
  });

  test('refuses JSON, short messages and other versions', () => {
    assert.equal(hasEnvelope(Buffer.from('{"op":"message","channel":"a","data":1}')), false);
    assert.equal(hasEnvelope(message(1, 1, 1).subarray(0, ENVELOPE_BYTES - 1)), false);
    const other = message(1, 1, 1);
    other[1] = 2;
    assert.equal(hasEnvelope(other), false);
  });
});

describe('SequenceStamper', () => {
  test('numbers each channel separately, from 1', () => {
    const s = new SequenceStamper(42);
    const out = Buffer.alloc(ENVELOPE_BYTES);
    const stamp = (channel: string): [number, number, number] => {
      s.stamp(channel, out);
      return [readOrigin(out), readStream(out), readSeq(out)];
    };
    assert.deepEqual(stamp('a'), [42, 1, 1]);
    assert.deepEqual(stamp('a'), [42, 1, 2]);
    assert.deepEqual(stamp('b'), [42, 2, 1]);
    assert.deepEqual(stamp('a'), [42, 1, 3]);
  });

  test('forgets the oldest channel past its bound and restarts it on a newer stream', () => {
    const s = new SequenceStamper(1, 2);
    const out = Buffer.alloc(ENVELOPE_BYTES);
    s.stamp('a', out);
    s.stamp('a', out);
    s.stamp('b', out);
    s.stamp('c', out); // forgets a
    s.stamp('a', out);
    assert.deepEqual([readStream(out), readSeq(out)], [4, 1]);
  });

  test('envelop puts the next envelope in front of a copy of the payload', () => {
    const s = new SequenceStamper(7);
    const payload = Buffer.from('{"op":"message"}');
    const first = s.envelop('a', payload);
    const second = s.envelop('a', payload);
    assert.ok(hasEnvelope(first));
    assert.deepEqual([readOrigin(second), readStream(second), readSeq(second)], [7, 1, 2]);
    assert.deepEqual(envelopePayload(first), payload);
    payload[0] = 0x20;
    assert.equal(envelopePayload(first)[0], 0x7b, 'a copy: the caller may reuse its buffer');
  });
});

describe('SequenceTracker', () => {
  test('ignores channels it does not watch', () => {
    const { t, counts } = tracker();
    assert.equal(t.accept('x', message(1, 1, 5)), true);
    assert.equal(t.accept('x', message(1, 1, 5)), true);
    assert.deepEqual(counts, { busGaps: 0, busDuplicates: 0 });
  });

  test('the first message per origin is the baseline; holes count the missing messages', () => {
    const { t, counts } = tracker();
    t.watch('c');
    for (const seq of [10, 11, 14, 15, 20]) assert.equal(t.accept('c', message(1, 1, seq)), true);
    assert.equal(counts.busGaps, 2 + 4);
    // Another origin on the same channel has its own sequence.
    assert.equal(t.accept('c', message(2, 1, 1)), true);
    assert.equal(t.accept('c', message(2, 1, 2)), true);
    assert.equal(counts.busGaps, 6);
    assert.equal(counts.busDuplicates, 0);
  });

  test('duplicates and replays of older streams are refused and counted', () => {
    const { t, counts } = tracker();
    t.watch('c');
    t.accept('c', message(1, 3, 1));
    t.accept('c', message(1, 3, 2));
    assert.equal(t.accept('c', message(1, 3, 2)), false);
    assert.equal(t.accept('c', message(1, 3, 1)), false);
    assert.equal(t.accept('c', message(1, 2, 9)), false);
    assert.deepEqual(counts, { busGaps: 0, busDuplicates: 3 });
  });

  test('a newer stream from the same origin counts only its own missing head', () => {
    const { t, counts } = tracker();
    t.watch('c');
    t.accept('c', message(1, 1, 5));
    assert.equal(t.accept('c', message(1, 4, 1)), true);
    assert.equal(counts.busGaps, 0);
    assert.equal(t.accept('c', message(1, 6, 3)), true);
    assert.equal(counts.busGaps, 2);
  });

  test('a restarted gateway is a new origin: no false gap', () => {
    const { t, counts } = tracker();
    t.watch('c');
    t.accept('c', message(100, 1, 500));
    t.accept('c', message(200, 1, 1));
    t.accept('c', message(200, 1, 2));
    assert.equal(counts.busGaps, 0);
  });

  test('forgetting a channel drops its state; watching again starts a fresh baseline', () => {
    const { t, counts } = tracker();
    t.watch('c');
    t.accept('c', message(1, 1, 1));
    t.forget('c');
    assert.equal(t.trackedChannels, 0);
    t.watch('c');
    t.accept('c', message(1, 1, 50));
    assert.equal(counts.busGaps, 0, 'messages while the channel was not held are not owed');
    t.watch('c'); // watching a held channel keeps its state
    t.accept('c', message(1, 1, 52));
    assert.equal(counts.busGaps, 1);
  });

  test('a channel taken up again is not tracked until its SUBSCRIBE is confirmed: the old subscription sets no baseline', () => {
    const { t, counts } = tracker();
    t.watch('c');
    for (const seq of [1, 2, 3]) t.accept('c', message(1, 1, seq));
    t.forget('c');
    t.hold('c');
    // Still in flight from the old subscription: delivered, not tracked.
    assert.equal(t.accept('c', message(1, 1, 4)), true);
    assert.equal(t.accept('c', message(1, 1, 5)), true);
    // 6 to 9 were published while the channel was not held; 10 is the first on the new subscription.
    t.watch('c');
    assert.equal(t.accept('c', message(1, 1, 10)), true);
    assert.equal(t.accept('c', message(1, 1, 11)), true);
    assert.deepEqual(counts, { busGaps: 0, busDuplicates: 0 });
    assert.equal(t.accept('c', message(1, 1, 13)), true);
    assert.equal(t.accept('c', message(1, 1, 13)), false);
    assert.deepEqual(counts, { busGaps: 1, busDuplicates: 1 }, 'tracked from the confirmation on');
  });

  test('hold on a tracked channel and watch after a resubscribe keep its state: losses while away are owed', () => {
    const { t, counts } = tracker();
    t.hold('c');
    t.watch('c');
    t.accept('c', message(1, 1, 1));
    t.hold('c');
    t.watch('c');
    t.accept('c', message(1, 1, 4));
    assert.equal(counts.busGaps, 2);
    assert.equal(t.trackedChannels, 1);
    t.forget('c');
    assert.equal(t.trackedChannels, 0);
    t.hold('c');
    assert.equal(t.trackedChannels, 1);
    t.forget('c');
    assert.equal(t.trackedChannels, 0, 'a held channel is forgotten too');
  });

  test('keeps at most maxOrigins per channel, forgetting the least recently heard', () => {
    const { t, counts } = tracker(2);
    t.watch('c');
    t.accept('c', message(1, 1, 1));
    t.accept('c', message(2, 1, 1));
    t.accept('c', message(1, 1, 2)); // 1 heard more recently than 2
    t.accept('c', message(3, 1, 1)); // forgets 2
    t.accept('c', message(1, 1, 4));
    assert.equal(counts.busGaps, 1, 'origin 1 still tracked');
    t.accept('c', message(2, 1, 9)); // 2 was forgotten: a new baseline (forgets 3)
    assert.equal(counts.busGaps, 1);
    t.accept('c', message(3, 1, 5)); // 3 was forgotten too
    assert.equal(counts.busGaps, 1);
  });
});

// The recovery merge: exactly the missed messages, in order, without a duplicate at the seam,
// then the live ones, whatever the timing of live messages against the read (before, during,
// after, overlapping it); otherwise recovered:false with no replay, only the live messages after
// the ack's position. Every outcome of the table is reached.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HistoryRead } from '../../services/gateway/src/bus/history-read.js';
import type { PositionedMessage } from '../../services/gateway/src/bus/position.js';
import { ChannelRecovery, Recovery, type RecoveryResult, WITHOUT_HISTORY } from '../../services/gateway/src/recovery.js';

const E = 'E1';
const msg = (offset: number, epoch = E): PositionedMessage => ({ offset, epoch, bytes: Buffer.from(`${epoch}:${offset}`) });

/** A history read of epoch with top, holding the given offsets. */
function read(top: number, offsets: number[], epoch = E): HistoryRead {
  return { epoch, top, messages: offsets.map((o) => ({ offset: o, bytes: Buffer.from(`${epoch}:${o}`) })), complete: false };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function recover(since: number, live: PositionedMessage[], r: HistoryRead, limits = { maxMessages: 1000, maxBuffered: 100 }, epoch = E): RecoveryResult {
  const recovery = new ChannelRecovery({ offset: since, epoch }, limits);
  for (const m of live) recovery.push(m);
  return recovery.resolve(r);
}

/** What the client receives after the ack, as text (the bytes name epoch and offset). */
const sent = (result: RecoveryResult): string[] => result.messages.map((m) => m.bytes.toString());
const names = (offsets: number[], epoch = E): string[] => offsets.map((o) => `${epoch}:${o}`);

describe('ChannelRecovery: recovered', () => {
  test('no live messages: exactly the missed ones, acked at the top', () => {
    const r = recover(3, [], read(6, [4, 5, 6]));
    assert.equal(r.outcome, Recovery.Recovered);
    assert.deepEqual(r.position, { offset: 6, epoch: E });
    assert.deepEqual(sent(r), names([4, 5, 6]));
  });

  test('live messages from before the read (all in it): no duplicate at the seam', () => {
    const r = recover(3, [msg(5), msg(6)], read(6, [4, 5, 6]));
    assert.deepEqual(sent(r), names([4, 5, 6]));
  });

  test('live messages during the read, overlapping it: each offset once, in order', () => {
    const r = recover(3, [msg(5), msg(6), msg(7), msg(8)], read(6, [4, 5, 6]));
    assert.equal(r.outcome, Recovery.Recovered);
    assert.deepEqual(sent(r), names([4, 5, 6, 7, 8]));
    assert.deepEqual(r.position, { offset: 6, epoch: E }, 'the ack reports the top the read saw');
  });

  test('live messages only after the read: replay, then live', () => {
    const r = recover(3, [msg(7), msg(8)], read(6, [4, 5, 6]));
    assert.deepEqual(sent(r), names([4, 5, 6, 7, 8]));
  });

  test('a repeated live message is sent once', () => {
    const r = recover(3, [msg(7), msg(7), msg(6), msg(8)], read(6, [4, 5, 6]));
    assert.deepEqual(sent(r), names([4, 5, 6, 7, 8]));
  });

  test('nothing missed: only live messages; a channel never published recovers from 0', () => {
    assert.deepEqual(sent(recover(6, [msg(7)], read(6, []))), names([7]));
    const fresh = recover(0, [msg(1)], read(0, []));
    assert.equal(fresh.outcome, Recovery.Recovered);
    assert.deepEqual([fresh.position, sent(fresh)], [{ offset: 0, epoch: E }, names([1])]);
  });

  test('exactly RECOVERY_MAX_MESSAGES missed still recovers', () => {
    const r = recover(0, [], read(5, range(1, 5)), { maxMessages: 5, maxBuffered: 10 });
    assert.equal(r.outcome, Recovery.Recovered);
    assert.equal(r.messages.length, 5);
  });

  test('a missed message the read lacks but the live buffer holds (trimmed during the read) is filled in', () => {
    const r = recover(3, [msg(4), msg(5), msg(6), msg(7)], read(6, [5, 6]));
    assert.equal(r.outcome, Recovery.Recovered);
    assert.deepEqual(sent(r), names([4, 5, 6, 7]));
  });
});

describe('ChannelRecovery: not recovered, never a partial replay', () => {
  /** Not recovered: nothing at or before the ack's position is sent, and what is sent follows it without a hole. */
  function assertNoReplay(r: RecoveryResult): void {
    assert.equal(r.outcome.recovered, false);
    let next = r.position!.offset + 1;
    for (const m of r.messages) {
      assert.equal(m.epoch, r.position!.epoch);
      assert.equal(m.offset, next++);
    }
  }

  test('a foreign epoch: acked at the current position, only live messages after it', () => {
    const r = recover(3, [msg(5), msg(7)], read(6, [4, 5, 6]), undefined, 'old');
    assert.equal(r.outcome, Recovery.EpochMismatch);
    assert.deepEqual(r.position, { offset: 6, epoch: E });
    assert.deepEqual(sent(r), names([7]));
    assertNoReplay(r);
  });

  test('an offset beyond the top', () => {
    const r = recover(10, [], read(6, []));
    assert.equal(r.outcome, Recovery.BeyondTop);
    assertNoReplay(r);
  });

  test('more missed than RECOVERY_MAX_MESSAGES, though the read holds them all', () => {
    const r = recover(0, [msg(7)], read(6, range(1, 6)), { maxMessages: 5, maxBuffered: 10 });
    assert.equal(r.outcome, Recovery.TooMany);
    assert.deepEqual(sent(r), names([7]));
    assertNoReplay(r);
  });

  test('missed messages trimmed or expired from history', () => {
    const r = recover(3, [msg(7)], read(6, [5, 6]));
    assert.equal(r.outcome, Recovery.Missing);
    assert.deepEqual(sent(r), names([7]), 'not 5 and 6: no partial replay');
    assertNoReplay(r);
    assert.equal(recover(3, [], read(6, [4, 6])).outcome, Recovery.Missing, 'a hole in the middle');
  });

  test('a channel without history (never published, or expired): its fresh epoch is foreign', () => {
    const r = recover(5, [], read(0, [], 'fresh'));
    assert.equal(r.outcome, Recovery.EpochMismatch);
    assert.deepEqual(r.position, { offset: 0, epoch: 'fresh' });
  });

  test('history off: no position at all', () => {
    assert.deepEqual(WITHOUT_HISTORY, { outcome: Recovery.NoHistory, position: null, messages: [] });
  });

  test('the live stream moves to a new epoch during the read: reload up to it', () => {
    const r = recover(3, [msg(6), msg(1, 'E2'), msg(2, 'E2')], read(6, [4, 5, 6]));
    assert.equal(r.outcome, Recovery.Interrupted);
    assert.deepEqual(r.position, { offset: 0, epoch: 'E2' });
    assert.deepEqual(sent(r), names([1, 2], 'E2'));
    assertNoReplay(r);
  });

  test('a stale message of the old epoch before the read saw the new one: still no partial replay', () => {
    const r = recover(3, [msg(9, 'E0'), msg(7)], read(6, [4, 5, 6]), undefined, E);
    assert.equal(r.outcome, Recovery.Interrupted);
    assert.deepEqual([r.position, sent(r)], [{ offset: 6, epoch: E }, names([7])]);
  });

  test('a hole in the live stream after the read', () => {
    const r = recover(3, [msg(7), msg(9), msg(10)], read(6, [4, 5, 6]));
    assert.equal(r.outcome, Recovery.Interrupted);
    assert.deepEqual([r.position, sent(r)], [{ offset: 8, epoch: E }, names([9, 10])]);
  });

  test('a lost gap declared by the gateway during the read: acked at its position, then what follows', () => {
    const recovery = new ChannelRecovery({ offset: 3, epoch: E }, { maxMessages: 1000, maxBuffered: 100 });
    recovery.push(msg(7));
    recovery.lost({ offset: 9, epoch: E });
    recovery.push(msg(9)); // superseded by the loss
    recovery.push(msg(10));
    recovery.push(msg(11));
    const r = recovery.resolve(read(6, [4, 5, 6]));
    assert.equal(r.outcome, Recovery.Interrupted);
    assert.deepEqual([r.position, sent(r)], [{ offset: 9, epoch: E }, names([10, 11])]);
  });

  test('past the live buffer bound: what was held is dropped, the ack moves past it', () => {
    const recovery = new ChannelRecovery({ offset: 3, epoch: E }, { maxMessages: 1000, maxBuffered: 2 });
    for (const o of [7, 8, 9]) recovery.push(msg(o)); // 9 overflows
    recovery.push(msg(10));
    const r = recovery.resolve(read(6, [4, 5, 6]));
    assert.equal(r.outcome, Recovery.Overflow);
    assert.deepEqual([r.position, sent(r)], [{ offset: 9, epoch: E }, names([10])]);
  });

  test('resolves once', () => {
    const recovery = new ChannelRecovery({ offset: 0, epoch: E }, { maxMessages: 10, maxBuffered: 10 });
    recovery.resolve(read(0, []));
    assert.throws(() => recovery.resolve(read(0, [])));
  });

  test('every outcome has its own metric label', () => {
    const results = Object.values(Recovery).map((o) => o.result);
    assert.equal(new Set(results).size, results.length);
    assert.deepEqual(Object.values(Recovery).filter((o) => o.recovered), [Recovery.Recovered]);
  });
});

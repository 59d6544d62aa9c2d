// Gap repair on the receiving gateway: in-order delivery, duplicates dropped, a jump repaired
// from history with later messages held and released after it (each offset once, in order),
// partial or failed repairs declared lost once, a new epoch lost only when the old tail may have
// been missed, the top check after a reconnect, and bounded holding.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HistoryRead } from '../../services/gateway/src/bus/history-read.js';
import { GapRepair, type RepairCounts, type RepairHost } from '../../services/gateway/src/bus/position-repair.js';
import type { Position, PositionedMessage } from '../../services/gateway/src/bus/position.js';

const E = 'E1';
const msg = (offset: number, epoch = E): PositionedMessage => ({ offset, epoch, bytes: Buffer.from(`${epoch}:${offset}`) });

class Host implements RepairHost {
  /** What local subscribers got, in order: "E1:5" for a message, "lost E1:7" for a lost frame. */
  readonly out: string[] = [];
  readonly repairs: { channel: string; id: number; epoch: string; after: number; to: number }[] = [];
  deliver(channel: string, m: PositionedMessage): void {
    assert.equal(channel, 'c');
    this.out.push(m.bytes.toString());
  }
  lost(_channel: string, p: Position): void {
    this.out.push(`lost ${p.epoch}:${p.offset}`);
  }
  repair(channel: string, id: number, epoch: string, after: number, to: number): void {
    this.repairs.push({ channel, id, epoch, after, to });
  }
  get lastRepair(): { id: number; epoch: string; after: number; to: number } {
    const r = this.repairs.at(-1);
    assert.ok(r, 'a repair was asked for');
    return r;
  }
}

/** A host that can fence (the Redis Cluster bus): it records each fence asked for. */
class FenceHost extends Host {
  readonly fences: { id: number; observed: Position }[] = [];
  fence(channel: string, id: number, observed: Position): void {
    assert.equal(channel, 'c');
    this.fences.push({ id, observed });
  }
}

function setup(maxHeld?: number, host: Host = new Host()): { host: Host; repair: GapRepair; counts: RepairCounts } {
  const counts: RepairCounts = { busGapsRepaired: 0, busGaps: 0, busLost: 0, busDuplicates: 0, busRewound: 0 };
  const repair = new GapRepair(host, counts, maxHeld);
  repair.watch('c');
  return { host, repair, counts };
}

/** A history read of epoch with top, holding the given offsets. */
function read(top: number, offsets: number[], epoch = E): HistoryRead {
  return { epoch, top, messages: offsets.map((o) => ({ offset: o, bytes: Buffer.from(`${epoch}:${o}`) })), complete: false };
}

const names = (offsets: number[], epoch = E): string[] => offsets.map((o) => `${epoch}:${o}`);
const feed = (repair: GapRepair, offsets: number[], epoch = E): void => offsets.forEach((o) => repair.accept('c', msg(o, epoch)));

describe('GapRepair: in order', () => {
  test('an untracked channel is delivered as it comes', () => {
    const { host, repair } = setup();
    repair.forget('c');
    feed(repair, [5, 3, 9]);
    assert.deepEqual(host.out, names([5, 3, 9]));
    assert.equal(host.repairs.length, 0);
  });

  test('the first message is the baseline; in-order messages pass; a repeat is dropped and counted', () => {
    const { host, repair, counts } = setup();
    feed(repair, [5, 6, 6, 7, 4]);
    assert.deepEqual(host.out, names([5, 6, 7]));
    assert.equal(counts.busDuplicates, 2);
    assert.equal(host.repairs.length, 0);
  });

  test('a baseline given at watch: the next message must follow it', () => {
    const { host } = setup();
    const repair = new GapRepair(host, { busGapsRepaired: 0, busGaps: 0, busLost: 0, busDuplicates: 0, busRewound: 0 });
    repair.watch('c', { offset: 4, epoch: E });
    feed(repair, [6]);
    assert.deepEqual(host.lastRepair, { channel: 'c', id: 1, epoch: E, after: 4, to: 5 });
  });
});

describe('GapRepair: a jump', () => {
  test('is repaired from history: the missing, then the held messages, each once, in order', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 2, 6, 7, 8]);
    assert.deepEqual(host.out, names([1, 2]), '6, 7, 8 are held');
    assert.equal(repair.holding, 3);
    const r = host.lastRepair;
    assert.deepEqual([r.epoch, r.after, r.to], [E, 2, 5]);
    repair.repaired('c', r.id, read(8, [3, 4, 5, 6, 7, 8]));
    feed(repair, [9]);
    assert.deepEqual(host.out, names([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    assert.deepEqual([counts.busGapsRepaired, counts.busGaps, counts.busLost, counts.busDuplicates], [3, 0, 0, 0]);
    assert.equal(repair.holding, 0);
  });

  test('a part trimmed from history: one lost event at the position it jumps to, then the rest', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 2, 10, 11]);
    repair.repaired('c', host.lastRepair.id, read(11, [8, 9, 10, 11]));
    assert.deepEqual(host.out, [...names([1, 2]), `lost ${E}:7`, ...names([8, 9, 10, 11])]);
    assert.deepEqual([counts.busGapsRepaired, counts.busGaps, counts.busLost], [2, 5, 1]);
  });

  test('nothing left in history (another epoch now): lost at the end of the gap, then the held messages', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 5, 6]);
    repair.repaired('c', host.lastRepair.id, read(3, [1, 2, 3], 'E2'));
    assert.deepEqual(host.out, [...names([1]), `lost ${E}:4`, ...names([5, 6])]);
    assert.deepEqual([counts.busGapsRepaired, counts.busGaps, counts.busLost], [0, 3, 1]);
  });

  test('a failed read: the gap is lost and the channel moves on', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 4]);
    repair.repairFailed('c', host.lastRepair.id);
    feed(repair, [5]);
    assert.deepEqual(host.out, [...names([1]), `lost ${E}:3`, ...names([4, 5])]);
    assert.deepEqual([counts.busGaps, counts.busLost], [2, 1]);
  });

  test('a second gap among the held messages asks for a second repair and holds the rest again', () => {
    const { host, repair } = setup();
    feed(repair, [1, 3, 4, 7, 8]);
    const first = host.lastRepair;
    repair.repaired('c', first.id, read(8, [2, 3, 4, 7, 8]));
    assert.deepEqual(host.out, names([1, 2, 3, 4]));
    const second = host.lastRepair;
    assert.deepEqual([second.after, second.to], [4, 6]);
    assert.equal(repair.holding, 2, '7 and 8');
    repair.repaired('c', second.id, read(8, [5, 6, 7, 8]));
    assert.deepEqual(host.out, names([1, 2, 3, 4, 5, 6, 7, 8]));
  });

  test('live copies of what the repair delivered are dropped without counting duplicates', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 4, 2, 3, 5]); // 2 and 3 arrive late, after the jump that revealed them
    repair.repaired('c', host.lastRepair.id, read(5, [2, 3, 4, 5]));
    assert.deepEqual(host.out, names([1, 2, 3, 4, 5]));
    assert.equal(counts.busDuplicates, 0);
  });

  test('past the holding bound the repair is abandoned: the gap is lost, nothing that arrived is dropped, the late reply ignored', () => {
    const { host, repair, counts } = setup(3);
    feed(repair, [1, 5, 6, 7]);
    const r = host.lastRepair;
    feed(repair, [8]); // the 4th held message
    assert.deepEqual(host.out, [...names([1]), `lost ${E}:4`, ...names([5, 6, 7, 8])]);
    assert.equal(repair.holding, 0);
    repair.repaired('c', r.id, read(8, [2, 3, 4, 5, 6, 7, 8]));
    feed(repair, [9]);
    assert.deepEqual(host.out.slice(-1), names([9]), 'the late reply delivered nothing');
    assert.deepEqual([counts.busGaps, counts.busLost, counts.busGapsRepaired], [3, 1, 0]);
  });

  test('a channel forgotten during its repair ignores the reply', () => {
    const { host, repair } = setup();
    feed(repair, [1, 3]);
    repair.forget('c');
    assert.equal(repair.holding, 0);
    repair.repaired('c', host.lastRepair.id, read(3, [2, 3]));
    assert.deepEqual(host.out, names([1]));
  });
});

describe('GapRepair: epochs and reconnects', () => {
  test('a new epoch on an unbroken connection is no loss (a quiet channel expired and starts at 1)', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 2]);
    feed(repair, [1, 2], 'E2');
    assert.deepEqual(host.out, [...names([1, 2]), ...names([1, 2], 'E2')]);
    assert.equal(counts.busLost, 0);
  });

  test('a new epoch whose first offsets did not arrive: an ordinary gap of the new epoch', () => {
    const { host, repair } = setup();
    feed(repair, [1]);
    feed(repair, [3], 'E2');
    assert.deepEqual(host.lastRepair, { channel: 'c', id: 1, epoch: 'E2', after: 0, to: 2 });
  });

  test('a new epoch after the connection dropped: the old tail may be lost (one lost event at the new start), the new head is repaired', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 2]);
    repair.connectionLost();
    feed(repair, [4, 5], 'E2');
    assert.deepEqual(host.out, [...names([1, 2]), 'lost E2:0']);
    assert.deepEqual(host.lastRepair, { channel: 'c', id: 1, epoch: 'E2', after: 0, to: 3 });
    repair.repaired('c', 1, read(5, [1, 2, 3, 4, 5], 'E2'));
    assert.deepEqual(host.out, [...names([1, 2]), 'lost E2:0', ...names([1, 2, 3, 4, 5], 'E2')]);
    assert.deepEqual([counts.busLost, counts.busGaps, counts.busGapsRepaired, counts.busDuplicates], [1, 0, 3, 0]);
  });

  test('after a reconnect a top in another epoch with messages: lost at its start, then its head repaired; live copies are no duplicates', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 2]);
    repair.connectionLost();
    repair.top('c', { offset: 3, epoch: 'E2' });
    assert.deepEqual(host.lastRepair, { channel: 'c', id: 1, epoch: 'E2', after: 0, to: 3 });
    feed(repair, [3, 4], 'E2'); // in flight while the top was read
    repair.repaired('c', 1, read(3, [1, 2, 3], 'E2'));
    assert.deepEqual(host.out, [...names([1, 2]), 'lost E2:0', ...names([1, 2, 3, 4], 'E2')]);
    assert.deepEqual([counts.busLost, counts.busDuplicates], [1, 0]);
  });

  test('after a reconnect a message that follows on proves nothing was missed; a later top is ignored', () => {
    const { host, repair } = setup();
    feed(repair, [1, 2]);
    repair.connectionLost();
    feed(repair, [3]);
    repair.top('c', { offset: 9, epoch: 'E9' });
    assert.deepEqual([host.out, host.repairs.length], [names([1, 2, 3]), 0]);
  });

  test('after a reconnect the top reveals a lost tail, which is repaired', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 2]);
    repair.connectionLost();
    repair.top('c', { offset: 5, epoch: E });
    const r = host.lastRepair;
    assert.deepEqual([r.after, r.to], [2, 5]);
    feed(repair, [4, 5, 6]); // published after the top was read, or in flight while it was
    repair.repaired('c', r.id, read(5, [3, 4, 5]));
    assert.deepEqual(host.out, names([1, 2, 3, 4, 5, 6]));
    assert.deepEqual([counts.busGapsRepaired, counts.busDuplicates], [3, 0]);
  });

  test('after a reconnect a top at the last offset, or older than it, changes nothing', () => {
    const { host, repair } = setup();
    feed(repair, [1, 2]);
    repair.connectionLost();
    repair.top('c', { offset: 2, epoch: E });
    repair.connectionLost();
    repair.top('c', { offset: 1, epoch: E }); // a stale reply
    feed(repair, [3]);
    assert.deepEqual([host.out, host.repairs.length], [names([1, 2, 3]), 0]);
  });

  test('after a reconnect a top in another epoch (Redis restarted without persistence): lost at that position', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 2]);
    repair.connectionLost();
    repair.top('c', { offset: 0, epoch: 'E2' });
    feed(repair, [1], 'E2');
    assert.deepEqual(host.out, [...names([1, 2]), 'lost E2:0', ...names([1], 'E2')]);
    assert.equal(counts.busLost, 1);
  });

  test('a top without a baseline sets it', () => {
    const { host, repair } = setup();
    repair.connectionLost();
    repair.top('c', { offset: 7, epoch: E });
    feed(repair, [8]);
    assert.deepEqual([host.out, host.repairs.length], [names([8]), 0]);
  });

  test('a top arriving while a repair from before the reconnect runs is applied after it', () => {
    const { host, repair } = setup();
    feed(repair, [1, 3]);
    const first = host.lastRepair;
    repair.connectionLost();
    repair.top('c', { offset: 6, epoch: E });
    assert.equal(host.repairs.length, 1, 'held until the running repair ends');
    repair.repaired('c', first.id, read(3, [2, 3]));
    const second = host.lastRepair;
    assert.deepEqual([second.after, second.to], [3, 6], 'message 3 came on the old connection: the tail still needs the top');
    repair.repaired('c', second.id, read(6, [4, 5, 6]));
    assert.deepEqual(host.out, names([1, 2, 3, 4, 5, 6]));
  });
});

describe('GapRepair: offsets going backwards under one epoch (a failover lost writes)', () => {
  function fenced(): { host: FenceHost; repair: GapRepair; counts: RepairCounts } {
    const host = new FenceHost();
    const { repair, counts } = setup(undefined, host);
    return { host, repair, counts };
  }

  test('without a fencing host a lower offset after a reconnect stays a duplicate (single Redis, as before)', () => {
    const { host, repair, counts } = setup();
    feed(repair, [1, 2, 3]);
    repair.connectionLost();
    feed(repair, [2]);
    assert.deepEqual([host.out, counts.busDuplicates, counts.busLost], [names([1, 2, 3]), 1, 0]);
  });

  test('a lower offset heard on a newer connection is held and fenced; the new epoch is one lost, the stale epoch dropped, the rest follows', () => {
    const { host, repair, counts } = fenced();
    feed(repair, [1, 2, 3, 4, 5]);
    repair.connectionLost();
    feed(repair, [4, 5]); // the promoted replica had 3: its 4 and 5 are other messages
    assert.equal(host.fences.length, 1, 'one fence for the channel');
    assert.deepEqual(host.fences[0]!.observed, { offset: 5, epoch: E });
    assert.deepEqual(host.out, names([1, 2, 3, 4, 5]), 'nothing delivered while fencing');
    feed(repair, [1], 'E2'); // published after the fence reset the history, before its reply
    repair.fenced('c', host.fences[0]!.id, { offset: 0, epoch: 'E2' }, 3);
    feed(repair, [6]); // a late publish under the fenced-away epoch
    feed(repair, [2], 'E2');
    assert.deepEqual(host.out, [...names([1, 2, 3, 4, 5]), 'lost E2:0', ...names([1, 2], 'E2')]);
    assert.deepEqual([counts.busLost, counts.busRewound, counts.busDuplicates], [1, 2, 0]);
  });

  test('a top behind what was heard after a reconnect fences; offsets the new master lacks count as rewound', () => {
    const { host, repair, counts } = fenced();
    feed(repair, [1, 2, 3, 4, 5]);
    repair.connectionLost();
    repair.top('c', { offset: 3, epoch: E });
    assert.deepEqual(host.fences.map((f) => f.observed), [{ offset: 5, epoch: E }]);
    repair.fenced('c', host.fences[0]!.id, { offset: 0, epoch: 'E2' }, 3);
    feed(repair, [1], 'E2');
    assert.deepEqual(host.out, [...names([1, 2, 3, 4, 5]), 'lost E2:0', ...names([1], 'E2')]);
    assert.deepEqual([counts.busLost, counts.busRewound], [1, 2]);
  });

  test('a fence that finds the history not behind changes nothing: the held message is then a duplicate', () => {
    const { host, repair, counts } = fenced();
    feed(repair, [1, 2, 3]);
    repair.connectionLost();
    feed(repair, [3]);
    repair.fenced('c', host.fences[0]!.id, { offset: 3, epoch: E }, 3);
    feed(repair, [4]);
    assert.deepEqual([host.out, counts.busLost, counts.busDuplicates], [names([1, 2, 3, 4]), 0, 1]);
  });

  test('a failed fence declares what was held lost once, and the channel moves on without fencing again', () => {
    const { host, repair, counts } = fenced();
    feed(repair, [1, 2, 3]);
    repair.connectionLost();
    feed(repair, [2]);
    repair.repairFailed('c', host.fences[0]!.id);
    feed(repair, [3, 4]);
    assert.deepEqual(host.out, [...names([1, 2, 3]), 'lost E1:3', ...names([4])]);
    assert.deepEqual([host.fences.length, counts.busLost], [1, 1]);
  });
});

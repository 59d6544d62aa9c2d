import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type CpuProfile, formatSummary, summarize } from '../../tools/loadgen/src/profile-summary.js';

const frame = (functionName: string, lineNumber = 0) => ({ functionName, url: 'file:///x/src/hub.js', lineNumber });

/** root(1) > broadcast(2) > write(3); root > idle(4); root > startup(5). One sample each ms. */
function profile(samples: number[]): CpuProfile {
  return {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 4, 5] },
      { id: 2, callFrame: frame('broadcast', 138), children: [3] },
      { id: 3, callFrame: frame('writeBuffer') },
      { id: 4, callFrame: frame('(idle)') },
      { id: 5, callFrame: frame('startup') },
    ],
    startTime: 0,
    samples,
    timeDeltas: samples.map(() => 1000),
  };
}

describe('profile summary', () => {
  test('counts only the window of samples under the mark, idle left out', () => {
    // startup before and after the broadcasts is outside the window; idle inside it is not busy.
    const startup = Array<number>(50).fill(5);
    const bulk = Array.from({ length: 100 }, (_, i) => (i % 4 === 0 ? 4 : i % 2 === 0 ? 2 : 3));
    const s = summarize([profile([...startup, ...bulk, ...startup])], 'broadcast');
    assert.equal(s.unmarked, 0);
    assert.ok(s.rows.every((r) => !r.name.startsWith('startup') && !r.name.startsWith('(idle)')));
    assert.equal(s.rows[0]!.name, 'writeBuffer src/hub.js:1');
    assert.equal(s.rows.find((r) => r.name.startsWith('broadcast'))!.name, 'broadcast src/hub.js:139');
    assert.ok(s.windowMicros > 80_000 && s.windowMicros <= 100_000);
    assert.equal(s.busyMicros, s.rows.reduce((a, r) => a + r.micros, 0));
    assert.match(formatSummary(s, 1), /^window 0\.\d s .*\n *\d+\.\d % +\d+ ms {2}writeBuffer/);
  });

  test('a profile that never ran the mark is skipped and said so', () => {
    const s = summarize([profile([5, 5, 5])], 'broadcast');
    assert.equal(s.unmarked, 1);
    assert.equal(s.busyMicros, 0);
    assert.match(formatSummary(s, 5), /1 profiles without the mark skipped/);
  });
});

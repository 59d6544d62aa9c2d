// The Disconnect registry: every entry a close the wire allows, every counted label value named
// by exactly one entry, so the registry and the metrics' label sets cannot drift apart.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CloseCode, Disconnect, EvictReason, PolicyCloseReason } from '../../services/gateway/src/codes.js';

const entries = Object.entries(Disconnect) as [string, Disconnect][];

describe('Disconnect registry', () => {
  test('each entry with a close frame uses a registered close code and a reason of at most 123 bytes', () => {
    const codes = new Set<number>(Object.values(CloseCode));
    for (const [name, entry] of entries) {
      if (entry.code !== null) assert.ok(codes.has(entry.code), `${name}: ${entry.code} is a CloseCode`);
      assert.ok(entry.reason.length > 0, `${name} has a reason`);
      assert.ok(Buffer.byteLength(entry.reason) <= 123, `${name}: a close reason fits in a control frame`);
    }
  });

  test('every eviction reason and policy close reason is counted by exactly one entry', () => {
    const evicted = entries.flatMap(([, e]) => (e.counts !== null && 'evicted' in e.counts ? [e.counts.evicted] : []));
    const policy = entries.flatMap(([, e]) => (e.counts !== null && 'policy' in e.counts ? [e.counts.policy] : []));
    assert.deepEqual(evicted.sort(), Object.values(EvictReason).sort());
    assert.deepEqual(policy.sort(), Object.values(PolicyCloseReason).sort());
  });

  test('a heartbeat timeout and a write error terminate; the others send a close frame', () => {
    const terminated = entries.filter(([, e]) => e.code === null).map(([name]) => name);
    assert.deepEqual(terminated.sort(), ['HeartbeatTimeout', 'WriteError']);
    assert.equal(Disconnect.Shutdown.code, 1001);
  });
});

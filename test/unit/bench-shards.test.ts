// The bench's Redis table (`--redis-cluster`, tools/loadgen/src/shard-report.ts): Redis CPU per
// publish on the one Redis and on each master, each master's share, failed runs shown as such.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Measurement } from '../../tools/loadgen/src/rig.js';
import type { ScenarioResult } from '../../tools/loadgen/src/scenarios.js';
import { buildShardRows, formatShardTable } from '../../tools/loadgen/src/shard-report.js';
import type { RedisShard } from '../../tools/loadgen/src/targets.js';

const MASTERS: RedisShard[] = [
  { port: 7001, pid: 1, slots: '0-5460' },
  { port: 7002, pid: 2, slots: '5461-10922' },
  { port: 7003, pid: 3, slots: '10923-16383' },
];

function run(scenario: 'f' | 'g', redisCpuMicros: number[], sent = 1000): ScenarioResult {
  const m: Measurement = {
    subscribers: 300, rate: 300, sent, expected: sent * 3, received: sent * 3, dropped: 0, lost: 0,
    busMessages: null, busReconnects: null, publishesRejected: 0, silent: 0, open: 300, closed: 0,
    deliveriesPerSecond: 1000, latencyMs: { p50: 1, p99: 2, p999: 2, max: 3 },
    cpuMicrosPerDelivery: 10, gatewayCpuMicrosPerDelivery: 8, redisCpuMicros, loadCpuCores: 0, machineBusy: 0,
  };
  return { scenario, target: 'hubcast', servers: 3, measurement: m };
}

describe('bench Redis table', () => {
  test('one row for the one Redis, one per master and their sum; CPU per publish of the whole run and each share', () => {
    const rows = buildShardRows([run('f', [30_000])], [run('f', [12_000, 9_000, 9_000])], MASTERS);
    assert.deepEqual(
      rows.map((r) => [r.topology, r.process, r.cpuMicrosPerPublish, r.share]),
      [
        ['one Redis', 'redis-server', 30, 1],
        ['Redis Cluster', 'master :7001 (slots 0-5460)', 12, 0.4],
        ['Redis Cluster', 'master :7002 (slots 5461-10922)', 9, 0.3],
        ['Redis Cluster', 'master :7003 (slots 10923-16383)', 9, 0.3],
        ['Redis Cluster', 'all masters', 30, 1],
      ],
    );
    const table = formatShardTable(rows);
    assert.match(table, /\| \(f\) \| Redis Cluster \| master :7002 \(slots 5461-10922\) \| 9\.00 \| 0\.30 \| 1\.0000 \| 8\.00 \|/);
  });

  test('a failed or missing run is shown, never a figure; only scenarios run on the cluster get rows', () => {
    const failed: ScenarioResult = { scenario: 'g', target: 'hubcast', servers: 0, error: 'warm-up: 3 connections never received a message' };
    const rows = buildShardRows([run('f', [100])], [failed], MASTERS);
    assert.deepEqual(
      rows.map((r) => [r.scenario, r.topology, r.process, r.cpuMicrosPerPublish]),
      [
        ['(g)', 'one Redis', 'not run', null],
        ['(g)', 'Redis Cluster', 'FAILED: warm-up: 3 connections never received a message', null],
      ],
    );
    assert.match(formatShardTable(rows), /\| \(g\) \| one Redis \| not run \| n\/a \| n\/a \| n\/a \| n\/a \|/);
  });

  test('no Redis CPU at all: the share cannot be judged', () => {
    const rows = buildShardRows([], [run('g', [0, 0, 0])], MASTERS);
    assert.deepEqual(rows.slice(1).map((r) => r.share), [null, null, null, null]);
  });
});

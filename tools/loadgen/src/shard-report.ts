// The Redis table of `--redis-cluster`: hubcast's runs on one Redis and on a Redis Cluster side by
// side, Redis CPU per publish on the one Redis and on each master, so the split over the shards
// shows (each master's share of all Redis CPU; a third each when channels spread evenly).
import type { ScenarioResult } from './scenarios.js';
import type { RedisShard } from './targets.js';

export interface ShardRow {
  readonly scenario: string;
  readonly topology: 'one Redis' | 'Redis Cluster';
  readonly process: string;
  /** Redis CPU of this process over the run, per publish of the whole run (µs). */
  readonly cpuMicrosPerPublish: number | null;
  /** This process's part of the topology's Redis CPU. */
  readonly share: number | null;
  readonly receivedPerExpected: number | null;
  readonly gatewayCpuMicrosPerDelivery: number | null;
}

function topologyRows(scenario: string, topology: ShardRow['topology'], result: ScenarioResult | undefined, names: readonly string[]): ShardRow[] {
  const m = result?.measurement;
  if (m === undefined) return [{ scenario, topology, process: result?.error ? `FAILED: ${result.error}` : 'not run', cpuMicrosPerPublish: null, share: null, receivedPerExpected: null, gatewayCpuMicrosPerDelivery: null }];
  const total = m.redisCpuMicros.reduce((a, b) => a + b, 0);
  const common = { scenario, topology, receivedPerExpected: m.received / Math.max(1, m.expected), gatewayCpuMicrosPerDelivery: m.gatewayCpuMicrosPerDelivery };
  const perProcess = m.redisCpuMicros.map((cpu, i) => ({
    ...common,
    process: names[i] ?? `Redis ${i + 1}`,
    cpuMicrosPerPublish: cpu / Math.max(1, m.sent),
    share: total === 0 ? null : cpu / total,
  }));
  if (perProcess.length <= 1) return perProcess;
  return [...perProcess, { ...common, process: 'all masters', cpuMicrosPerPublish: total / Math.max(1, m.sent), share: total === 0 ? null : 1 }];
}

/** For each scenario run on both: the one-Redis row, then one row per master and their sum. */
export function buildShardRows(single: readonly ScenarioResult[], cluster: readonly ScenarioResult[], masters: readonly RedisShard[]): ShardRow[] {
  const names = masters.map((m) => `master :${m.port} (slots ${m.slots})`);
  const scenarios = [...new Set(cluster.map((r) => r.scenario))];
  return scenarios.flatMap((s) => {
    const hub = (rs: readonly ScenarioResult[]): ScenarioResult | undefined => rs.find((r) => r.scenario === s && r.target === 'hubcast');
    return [...topologyRows(`(${s})`, 'one Redis', hub(single), ['redis-server']), ...topologyRows(`(${s})`, 'Redis Cluster', hub(cluster), names)];
  });
}

export function formatShardTable(rows: readonly ShardRow[]): string {
  const header = ['scenario', 'Redis', 'process', 'Redis CPU per publish, µs', 'share of Redis CPU', 'deliveries received / expected', 'gateway CPU per delivery, µs'];
  const num = (v: number | null, digits: number): string => (v === null ? 'n/a' : v.toFixed(digits));
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const cells = [r.scenario, r.topology, r.process, num(r.cpuMicrosPerPublish, 2), num(r.share, 2), num(r.receivedPerExpected, 4), num(r.gatewayCpuMicrosPerDelivery, 2)];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

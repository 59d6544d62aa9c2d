// The comparison table: one row per scenario and figure, one column per target, the two ratios
// the issue sets targets on, and whether each target was met.
import type { Measurement, ScenarioResult, Sizes } from './scenarios.js';
import { TARGET_LABEL, TARGETS, type TargetName } from './targets.js';

interface Row {
  readonly scenario: string;
  readonly figure: string;
  readonly values: Partial<Record<TargetName, number | null>>;
  readonly format: (v: number) => string;
  readonly ratios?: boolean;
  /** What the issue asks, and whether this run met it (null: could not be judged; absent: the row only informs). */
  readonly goal?: string;
  readonly met?: boolean | null;
}

const fixed = (digits: number) => (v: number) => v.toFixed(digits);
const int = (v: number): string => Math.round(v).toLocaleString('en-US');

function pick(results: readonly ScenarioResult[], scenario: string, f: (r: ScenarioResult) => number | null | undefined): Partial<Record<TargetName, number | null>> {
  const out: Partial<Record<TargetName, number | null>> = {};
  for (const r of results) if (r.scenario === scenario) out[r.target] = f(r) ?? null;
  return out;
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;

function within(value: number | null, max: number): boolean | null {
  return value === null ? null : value <= max;
}

function runsText(results: readonly ScenarioResult[], s: string): string {
  return TARGETS.flatMap((t) => {
    const runs = results.find((r) => r.scenario === s && r.target === t)?.runs;
    return runs ? [`${TARGET_LABEL[t]} ${runs.map((v) => `${v.cpu.toFixed(2)} µs/${v.p99.toFixed(0)} ms`).join(', ')}`] : [];
  }).join('; ');
}

function flowRows(results: readonly ScenarioResult[], s: 'a' | 'b' | 'e', title: string): Row[] {
  const m = (f: (m: Measurement) => number | null) => pick(results, s, (r) => (r.measurement ? f(r.measurement) : null));
  const cpu = m((x) => x.cpuMicrosPerDelivery);
  const p99 = m((x) => x.latencyMs.p99);
  const rows: Row[] = [
    { scenario: title, figure: 'deliveries received / expected', values: m((x) => x.received / Math.max(1, x.expected)), format: fixed(4) },
    { scenario: title, figure: 'deliveries dropped (counted)', values: m((x) => x.dropped), format: int },
    { scenario: title, figure: 'publishes refused (counted)', values: m((x) => x.publishesRejected), format: int },
    { scenario: title, figure: 'deliveries lost (not counted)', values: m((x) => x.lost), format: int },
    { scenario: title, figure: 'connections closed by the server', values: m((x) => x.closed), format: int },
    { scenario: title, figure: 'p50 latency, ms', values: m((x) => x.latencyMs.p50), format: fixed(2) },
    { scenario: title, figure: 'p99 latency, ms', values: p99, format: fixed(2), ratios: true },
    { scenario: title, figure: 'max latency, ms', values: m((x) => x.latencyMs.max), format: fixed(1) },
    { scenario: title, figure: 'server CPU per delivery, µs (servers + Redis)', values: cpu, format: fixed(2), ratios: true },
    ...(results.some((r) => r.scenario === s && r.runs)
      ? [{ scenario: title, figure: 'every round: CPU per delivery / p99 (the figures above are medians)', values: {}, format: fixed(2), goal: runsText(results, s) }]
      : []),
    { scenario: title, figure: 'server CPU per delivery, µs (servers only)', values: m((x) => x.gatewayCpuMicrosPerDelivery), format: fixed(2), ratios: true },
    { scenario: title, figure: 'load processes CPU, cores', values: m((x) => x.loadCpuCores), format: fixed(2) },
    { scenario: title, figure: 'machine busy, share of 2 cores', values: m((x) => x.machineBusy), format: fixed(2) },
  ];
  if (s === 'a' || s === 'b') {
    rows.push(...historyRows(title, cpu, m((x) => x.cpuMicrosPerDelivery - x.gatewayCpuMicrosPerDelivery), p99));
    rows.push({
      scenario: title,
      figure: 'target: CPU/delivery ≤ 1.15× ceiling',
      values: {},
      format: fixed(2),
      goal: `${fixed(2)(ratio(cpu.hubcast, cpu.ws) ?? NaN)}×`,
      met: within(ratio(cpu.hubcast, cpu.ws), 1.15),
    });
    rows.push({
      scenario: title,
      figure: 'target: CPU/delivery ≤ 0.5× Socket.IO',
      values: {},
      format: fixed(2),
      goal: `${fixed(2)(ratio(cpu.hubcast, cpu.socketio) ?? NaN)}×`,
      met: within(ratio(cpu.hubcast, cpu.socketio), 0.5),
    });
  }
  if (s === 'b') {
    rows.push({ scenario: title, figure: 'target: p99 ≤ 25 ms', values: {}, format: fixed(2), goal: `${fixed(2)(p99.hubcast ?? NaN)} ms`, met: within(p99.hubcast ?? null, 25) });
    rows.push({
      scenario: title,
      figure: 'target: p99 ≤ 0.1× Socket.IO',
      values: {},
      format: fixed(2),
      goal: `${fixed(3)(ratio(p99.hubcast, p99.socketio) ?? NaN)}×`,
      met: within(ratio(p99.hubcast, p99.socketio), 0.1),
    });
  }
  if (s === 'e') {
    const open = m((x) => x.open);
    const silent = m((x) => x.silent);
    rows.unshift({ scenario: title, figure: 'connections open', values: open, format: int });
    rows.splice(1, 0, { scenario: title, figure: 'connections that received nothing', values: silent, format: int });
    const e = results.find((r) => r.scenario === 'e' && r.target === 'hubcast')?.measurement;
    rows.push({
      scenario: title,
      figure: 'target: every connection open and receiving',
      values: {},
      format: int,
      goal: e ? `${e.open} open, ${e.silent} silent, ${e.lost} lost` : 'n/a',
      met: e ? e.open === e.subscribers && e.silent === 0 && e.lost === 0 : null,
    });
  }
  return rows;
}

type Values = Partial<Record<TargetName, number | null>>;

/** What history costs: hubcast (history at its default) against the same run with HISTORY_SIZE=0. */
function historyRows(title: string, cpu: Values, redisCpu: Values, p99: Values): Row[] {
  if (cpu['hubcast-nohistory'] === undefined) return [];
  const row = (figure: string, v: Values, unit: string): Row => {
    const on = v.hubcast ?? null;
    const off = v['hubcast-nohistory'] ?? null;
    const r = ratio(on, off);
    const text = on === null || off === null ? 'n/a' : `${r === null ? 'n/a' : `${r.toFixed(2)}×`} (${on.toFixed(2)} / ${off.toFixed(2)} ${unit})`;
    return { scenario: title, figure: `history on / off: ${figure}`, values: {}, format: fixed(2), goal: text };
  };
  return [
    row('server CPU per delivery (servers + Redis)', cpu, 'µs'),
    row('Redis CPU per delivery', redisCpu, 'µs'),
    row('p99 latency', p99, 'ms'),
  ];
}

export function buildRows(results: readonly ScenarioResult[], sizes: Sizes): Row[] {
  const rows: Row[] = [];
  const has = (s: string): boolean => results.some((r) => r.scenario === s);
  if (has('a')) rows.push(...flowRows(results, 'a', `(a) ${sizes.a.subscribers} subs × ${sizes.a.rate}/s × ${sizes.a.size} B`));
  if (has('b')) rows.push(...flowRows(results, 'b', `(b) ${sizes.b.subscribers} subs × ${sizes.b.rate}/s × ${sizes.b.size} B`));
  if (has('c')) {
    const rss = pick(results, 'c', (r) => (r.rssPerConnection === undefined ? null : r.rssPerConnection / 1024));
    const title = `(c) ${sizes.c.connections} idle connections, 1 server`;
    rows.push({ scenario: title, figure: 'RSS per idle connection, KiB', values: rss, format: fixed(2), ratios: true });
    rows.push({ scenario: title, figure: 'target: ≤ 9 KiB', values: {}, format: fixed(2), goal: `${fixed(2)(rss.hubcast ?? NaN)} KiB`, met: within(rss.hubcast ?? null, 9) });
  }
  if (has('d')) {
    const title = `(d) highest rate, p99 < ${sizes.d.p99Ms} ms, nothing dropped, ${sizes.d.subscribers} subs`;
    rows.push({ scenario: title, figure: 'deliveries per second', values: pick(results, 'd', (r) => r.bestDeliveriesPerSecond), format: int, ratios: true });
    rows.push({
      scenario: title,
      figure: 'steps tried (msg/s: p99 ms)',
      values: {},
      format: int,
      goal: TARGETS.map((t) => {
        const steps = results.find((r) => r.scenario === 'd' && r.target === t)?.steps ?? [];
        return `${TARGET_LABEL[t]} ${steps.map((m) => `${m.rate}:${m.latencyMs.p99.toFixed(0)}${m.lost || m.dropped ? '!' : ''}`).join(' ')}`;
      }).join('; '),
    });
  }
  if (has('e')) rows.push(...flowRows(results, 'e', `(e) ${sizes.e.subscribers} connections over ${sizes.gateways} servers`));
  return rows;
}

function cell(row: Row, t: TargetName): string {
  const v = row.values[t];
  return v === undefined ? '' : v === null || Number.isNaN(v) ? 'n/a' : row.format(v);
}

function ratioCell(row: Row, other: TargetName): string {
  if (!row.ratios) return '';
  const r = ratio(row.values.hubcast, row.values[other]);
  return r === null ? 'n/a' : `${r.toFixed(2)}×`;
}

export function formatTable(rows: readonly Row[]): string {
  const header = ['scenario', 'figure', ...TARGETS.map((t) => TARGET_LABEL[t]), 'hubcast / ceiling', 'hubcast / Socket.IO', 'target met'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) {
    // A row with a goal but no verdict only informs (the runs, the steps).
    const verdict = row.met === undefined ? null : row.met === null ? 'n/a' : row.met ? 'met' : 'MISSED';
    const met = row.goal === undefined ? '' : verdict === null ? row.goal : `${verdict} (${row.goal})`;
    lines.push(`| ${[row.scenario, row.figure, ...TARGETS.map((t) => cell(row, t)), ratioCell(row, 'ws'), ratioCell(row, 'socketio'), met].join(' | ')} |`);
  }
  return lines.join('\n');
}

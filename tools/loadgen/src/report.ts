// The comparison table: one row per scenario and figure, one column per target, the two ratios
// the issue sets targets on, and whether each target was met.
import type { Measurement } from './rig.js';
import type { ChurnFigures } from './churn.js';
import type { ScenarioResult, Sizes } from './scenarios.js';
import { TARGET_LABEL, TARGETS, type TargetName } from './targets.js';

type Values = Partial<Record<TargetName, number | null>>;

interface Row {
  readonly scenario: string;
  readonly figure: string;
  readonly values: Values;
  readonly format: (v: number) => string;
  readonly ratios?: boolean;
  /** What the issue asks, and whether this run met it (null: could not be judged; absent: the row only informs). */
  readonly goal?: string;
  readonly met?: boolean | null;
}

const fixed = (digits: number) => (v: number) => v.toFixed(digits);
const int = (v: number): string => Math.round(v).toLocaleString('en-US');

function pick(results: readonly ScenarioResult[], scenario: string, f: (r: ScenarioResult) => number | null | undefined): Values {
  const out: Values = {};
  for (const r of results) if (r.scenario === scenario) out[r.target] = f(r) ?? null;
  return out;
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;

function within(value: number | null, max: number): boolean | null {
  return value === null ? null : value <= max;
}

/** A target the issue sets on hubcast's figure: at most `max`, alone or as a ratio to another target's. */
interface Goal {
  readonly of: 'cpu' | 'p99';
  readonly vs: 'ws' | 'socketio' | null;
  readonly max: number;
  /** Digits of the ratio shown. */
  readonly digits: number;
}

const CPU_VS_CEILING = (max: number): Goal => ({ of: 'cpu', vs: 'ws', max, digits: 2 });
const CPU_VS_SOCKETIO: Goal = { of: 'cpu', vs: 'socketio', max: 0.5, digits: 2 };
const P99_25MS: Goal = { of: 'p99', vs: null, max: 25, digits: 2 };
const P99_VS_SOCKETIO: Goal = { of: 'p99', vs: 'socketio', max: 0.1, digits: 3 };

/** The targets of each publish scenario, in the order the table shows them (issues 4 and 13). */
const FLOW_GOALS: Readonly<Record<'a' | 'b' | 'e' | 'f' | 'g' | 'i', readonly Goal[]>> = {
  a: [CPU_VS_CEILING(1.15), CPU_VS_SOCKETIO],
  b: [CPU_VS_CEILING(1.15), CPU_VS_SOCKETIO, P99_25MS, P99_VS_SOCKETIO],
  e: [],
  f: [CPU_VS_CEILING(1.5), CPU_VS_SOCKETIO, P99_25MS],
  g: [CPU_VS_CEILING(1.5), CPU_VS_SOCKETIO, P99_25MS],
  i: [],
};

function goalRow(title: string, goal: Goal, figures: { readonly cpu: Values; readonly p99: Values }): Row {
  const v = figures[goal.of];
  const name = goal.of === 'cpu' ? 'CPU/delivery' : 'p99';
  if (goal.vs === null) {
    const unit = goal.of === 'cpu' ? 'µs' : 'ms';
    const value = v.hubcast ?? null;
    return { scenario: title, figure: `target: ${name} ≤ ${goal.max} ${unit}`, values: {}, format: fixed(2), goal: `${fixed(goal.digits)(value ?? NaN)} ${unit}`, met: within(value, goal.max) };
  }
  const r = ratio(v.hubcast, v[goal.vs]);
  const against = goal.vs === 'ws' ? 'ceiling' : TARGET_LABEL[goal.vs];
  return { scenario: title, figure: `target: ${name} ≤ ${goal.max}× ${against}`, values: {}, format: fixed(2), goal: `${fixed(goal.digits)(r ?? NaN)}×`, met: within(r, goal.max) };
}

function runsText(results: readonly ScenarioResult[], s: string): string {
  return TARGETS.flatMap((t) => {
    const runs = results.find((r) => r.scenario === s && r.target === t)?.runs;
    return runs ? [`${TARGET_LABEL[t]} ${runs.map((v) => `${v.cpu.toFixed(2)} µs/${v.p99.toFixed(0)} ms`).join(', ')}`] : [];
  }).join('; ');
}

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

function flowRows(results: readonly ScenarioResult[], s: 'a' | 'b' | 'e' | 'f' | 'g' | 'i', title: string): Row[] {
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
  rows.push(...historyRows(title, cpu, m((x) => x.cpuMicrosPerDelivery - x.gatewayCpuMicrosPerDelivery), p99));
  for (const goal of FLOW_GOALS[s]) rows.push(goalRow(title, goal, { cpu, p99 }));
  if (s === 'e' || s === 'i') {
    const open = m((x) => x.open);
    const silent = m((x) => x.silent);
    rows.unshift({ scenario: title, figure: 'connections open', values: open, format: int });
    rows.splice(1, 0, { scenario: title, figure: 'connections that received nothing', values: silent, format: int });
    const e = results.find((r) => r.scenario === s && r.target === 'hubcast')?.measurement;
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
  const { f, g, h, i } = sizes;
  if (has('f')) {
    const title = `(f) rooms: ${f.subscribers} clients in ${f.subscribers / f.perChannel} channels of ${f.perChannel} × ${f.rate}/s × ${f.size} B`;
    rows.push(...flowRows(results, 'f', title));
  }
  if (has('g')) rows.push(...flowRows(results, 'g', `(g) sparse: ${g.subscribers} clients, a channel each × ${g.rate}/s × ${g.size} B`));
  if (has('h')) rows.push(...churnRows(results, `(h) churn: ${h.connections} connections, ${h.batch} at a time, a channel each`));
  if (has('i')) {
    const title = `(i) ${i.subscribers} idle connections over ${i.gateways} servers, ${i.processes} load processes`;
    const rss = pick(results, 'i', (r) => (r.rssPerConnection === undefined ? null : r.rssPerConnection / 1024));
    rows.push({ scenario: title, figure: 'RSS per idle connection, KiB (servers summed)', values: rss, format: fixed(2), ratios: true });
    rows.push(...flowRows(results, 'i', title));
    rows.push({ scenario: title, figure: 'target: ≤ 9 KiB RSS per connection', values: {}, format: fixed(2), goal: `${fixed(2)(rss.hubcast ?? NaN)} KiB`, met: within(rss.hubcast ?? null, 9) });
  }
  return rows;
}

/** (h) The second half's memory growth per connection it churned: above this, the servers keep something per connection. */
export const CHURN_RSS_GROWTH_MAX_KIB = 1;

function churnRows(results: readonly ScenarioResult[], title: string): Row[] {
  const c = (f: (x: ChurnFigures) => number | null) => pick(results, 'h', (r) => (r.churn ? f(r.churn) : null));
  const mib = (bytes: number): number => bytes / 1024 / 1024;
  const growth = c((x) => (x.rssBytes.after - x.rssBytes.mid) / 1024 / (x.connections - Math.floor(x.connections / 2)));
  const hub = results.find((r) => r.scenario === 'h' && r.target === 'hubcast')?.churn;
  const row = (figure: string, values: Values, format: (v: number) => string, ratios = false): Row => ({ scenario: title, figure, values, format, ratios });
  return [
    row('connects per second (opened and closed)', c((x) => x.connectsPerSecond), int, true),
    row('server CPU per connection, µs (servers + Redis)', c((x) => x.cpuMicrosPerConnection), fixed(1), true),
    row('servers RSS before, MiB', c((x) => mib(x.rssBytes.before)), fixed(1)),
    row('servers RSS after the first half, MiB', c((x) => mib(x.rssBytes.mid)), fixed(1)),
    row('servers RSS after, MiB', c((x) => mib(x.rssBytes.after)), fixed(1)),
    row('RSS growth in the second half, KiB per connection', growth, fixed(3)),
    row('Redis channels left on the prefix', c((x) => x.channelsLeft), int),
    row('Redis subscribers left on the churned channels', c((x) => x.subscribersLeft), int),
    row('connections still counted open', c((x) => x.connectionsAfter), int),
    {
      scenario: title,
      figure: 'target: no Redis subscription left behind',
      values: {},
      format: int,
      goal: hub ? `${hub.channelsLeft} channels, ${hub.subscribersLeft} subscribers` : 'n/a',
      met: hub ? hub.channelsLeft === 0 && hub.subscribersLeft === 0 : null,
    },
    { scenario: title, figure: 'target: connection gauge back to zero', values: {}, format: int, goal: hub ? `${hub.connectionsAfter} open` : 'n/a', met: hub ? hub.connectionsAfter === 0 : null },
    {
      scenario: title,
      figure: `target: RSS growth bounded (second half ≤ ${CHURN_RSS_GROWTH_MAX_KIB} KiB per connection)`,
      values: {},
      format: fixed(3),
      goal: `${fixed(3)(growth.hubcast ?? NaN)} KiB`,
      met: within(growth.hubcast ?? null, CHURN_RSS_GROWTH_MAX_KIB),
    },
  ];
}

/** What a run left behind that it must not, by target: the quick run fails on any of it, as on a lost delivery. */
export function leftovers(results: readonly ScenarioResult[]): string[] {
  return results.flatMap((r) => {
    const x = r.churn;
    if (x === undefined) return [];
    const left = [
      ...(x.channelsLeft ? [`${x.channelsLeft} Redis channels`] : []),
      ...(x.subscribersLeft ? [`${x.subscribersLeft} Redis subscribers`] : []),
      ...(x.connectionsAfter !== 0 ? [`${x.connectionsAfter} connections`] : []),
    ];
    return left.length === 0 ? [] : [`(${r.scenario}) ${TARGET_LABEL[r.target]}: ${left.join(', ')} left behind`];
  });
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

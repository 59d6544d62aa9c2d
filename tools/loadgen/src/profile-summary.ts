// Self time per function in `.cpuprofile` files (`npm run bench -- --profile=DIR`), restricted to
// the measurement: a server's profile covers its whole life (start, connects, shutdown), so only
// the samples between the 5th and 95th percentile of those whose stack holds the mark function
// (e.g. the hub's `broadcast`) are counted. Pure: the CLI is profile.ts.

/** The parts of V8's CPU profile format read here. */
export interface CpuProfile {
  readonly nodes: readonly { readonly id: number; readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }; readonly children?: readonly number[] }[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SelfTime {
  /** function file:line (the file's last two path parts). */
  readonly name: string;
  readonly micros: number;
}

export interface Summary {
  /** The windows' lengths, summed over the profiles. */
  readonly windowMicros: number;
  /** Samples not idle within the windows. */
  readonly busyMicros: number;
  /** Busiest first, idle excluded. */
  readonly rows: readonly SelfTime[];
  /** Profiles with no sample under the mark (not counted). */
  readonly unmarked: number;
}

const IDLE = '(idle)';

function frameName(cf: CpuProfile['nodes'][number]['callFrame']): string {
  return `${cf.functionName || '(anonymous)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`;
}

export function summarize(profiles: readonly CpuProfile[], mark: string): Summary {
  const self = new Map<string, number>();
  let windowMicros = 0;
  let busyMicros = 0;
  let unmarked = 0;
  for (const p of profiles) {
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const marked = new Map<number, boolean>();
    const underMark = (id: number): boolean => {
      let known = marked.get(id);
      if (known !== undefined) return known;
      known = false;
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        if (byId.get(cur)?.callFrame.functionName === mark) {
          known = true;
          break;
        }
      }
      marked.set(id, known);
      return known;
    };
    // A sample's time is the delta to the next one (V8 stamps a sample when it is taken).
    const stamps: number[] = [];
    let t = p.startTime;
    for (let i = 0; i < p.samples.length; i++) stamps.push((t += p.timeDeltas[i] ?? 0));
    const hits = stamps.filter((_, i) => underMark(p.samples[i]!));
    if (hits.length === 0) {
      unmarked++;
      continue;
    }
    const from = hits[Math.floor(hits.length * 0.05)]!;
    const to = hits[Math.min(hits.length - 1, Math.floor(hits.length * 0.95))]!;
    windowMicros += to - from;
    for (let i = 0; i < p.samples.length; i++) {
      if (stamps[i]! < from || stamps[i]! >= to) continue;
      const cf = byId.get(p.samples[i]!)!.callFrame;
      if (cf.functionName === IDLE) continue;
      const dt = p.timeDeltas[i + 1] ?? 0;
      busyMicros += dt;
      const name = frameName(cf);
      self.set(name, (self.get(name) ?? 0) + dt);
    }
  }
  const rows = [...self].map(([name, micros]) => ({ name, micros })).sort((a, b) => b.micros - a.micros);
  return { windowMicros, busyMicros, rows, unmarked };
}

export function formatSummary(summary: Summary, top: number): string {
  const busy = summary.busyMicros;
  const lines = [
    `window ${(summary.windowMicros / 1e6).toFixed(1)} s (summed over profiles), busy ${(busy / 1000).toFixed(0)} ms` +
      (summary.unmarked > 0 ? `; ${summary.unmarked} profiles without the mark skipped` : ''),
  ];
  for (const row of summary.rows.slice(0, top)) {
    lines.push(`${((100 * row.micros) / Math.max(busy, 1)).toFixed(1).padStart(5)} %  ${(row.micros / 1000).toFixed(0).padStart(6)} ms  ${row.name}`);
  }
  return lines.join('\n');
}

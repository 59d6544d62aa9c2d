// The Grafana dashboard and alert rules as data: their PromQL, ready to run against Prometheus.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface DashboardQuery {
  readonly panel: string;
  readonly expr: string;
}

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

export function dashboard(): { templating: { list: { name: string; query: unknown }[] }; panels: Panel[] } {
  return JSON.parse(readFileSync(`${ROOT}deploy/grafana/dashboards/hubcast.json`, 'utf8'));
}

export function dashboardQueries(): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ panel: p.title, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard().panels);
  return out;
}

/** Grafana's variables as Grafana would expand them: every gateway, a 1-minute rate window. */
export function expandGrafana(expr: string, rateInterval = '1m'): string {
  return expr.replaceAll('$gateway', '.*').replaceAll('$__rate_interval', rateInterval).replaceAll('$__interval', rateInterval);
}

export function alertRules(): { alert: string; expr: string; annotations: Record<string, string> }[] {
  const doc = parse(readFileSync(`${ROOT}deploy/prometheus/alerts.yml`, 'utf8')) as {
    groups: { rules: { alert: string; expr: string; annotations: Record<string, string> }[] }[];
  };
  return doc.groups.flatMap((g) => g.rules);
}

/** Metric names a PromQL expression reads (hubcast_* and Prometheus's own up). */
export function metricNames(expr: string): string[] {
  const names: string[] = [...(expr.match(/\bhubcast_[a-z0-9_]+/g) ?? [])];
  if (/\bup\{/.test(expr)) names.push('up');
  return [...new Set(names)];
}

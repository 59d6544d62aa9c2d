// The metric table: what createMetrics exports is exactly the table, every Stats counter reaches a
// series, label sets and help texts come from codes.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Disconnect, DropReason, PolicyCloseReason, PublishRejectReason, UpgradeRejectReason } from '../../services/gateway/src/codes.js';
import { METRICS, type MetricsSources, createMetrics, series } from '../../services/gateway/src/metrics.js';
import { Stats } from '../../services/gateway/src/stats.js';
import { parseMetrics } from '../helpers/gateway.js';

/** Sets every number in Stats (nested records too) to a distinct value from FIRST up; returns how many. */
const FIRST = 10_001;
function fillDistinct(stats: Stats): number {
  let next = FIRST;
  const fill = (o: Record<string, unknown>): void => {
    for (const key of Object.keys(o)) {
      if (typeof o[key] === 'number') o[key] = next++;
      else fill(o[key] as Record<string, unknown>);
    }
  };
  fill(stats as unknown as Record<string, unknown>);
  return next - FIRST;
}

function sources(stats: Stats, busKind: 'memory' | 'redis' = 'redis'): MetricsSources {
  return { stats, busKind, isReady: () => true, channelCount: () => 1001, subscriptionCount: () => 1002 };
}

const key = (name: string, labels: Record<string, string>): string => {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(',')}}`;
};

/** hubcast_* series of a scrape, without the histograms'. */
const HISTOGRAMS = METRICS.filter((m) => m.type === 'histogram').map((m) => m.name);
async function scrape(src: MetricsSources): Promise<Map<string, number>> {
  const text = await createMetrics(src).registry.metrics();
  return new Map([...parseMetrics(text)].filter(([k]) => k.startsWith('hubcast_') && !HISTOGRAMS.some((h) => k.startsWith(h))));
}

describe('metric table', () => {
  test('the registry exports exactly the table: names, types, label names', { timeout: 5000 }, async () => {
    const exported = (await createMetrics(sources(new Stats())).registry.getMetricsAsJSON()).filter((m) => m.name.startsWith('hubcast_'));
    assert.deepEqual(
      exported.map((m) => [m.name, m.type, [...new Set(m.values.flatMap((v) => Object.keys(v.labels)).filter((l) => l !== 'le'))].sort()]),
      METRICS.map((m) => [m.name, m.type, m.labels.map((l) => l.name).sort()]),
    );
  });

  test('every series equals its table reading, and every Stats counter reaches exactly one series', { timeout: 5000 }, async () => {
    const stats = new Stats();
    const counters = fillDistinct(stats);
    const src = sources(stats);
    const expected = new Map<string, number>();
    for (const m of METRICS) if (m.read) series(m.labels, m.read(src), (labels, value) => expected.set(key(m.name, labels), value));
    assert.deepEqual(new Map([...(await scrape(src))].sort()), new Map([...expected].sort()));
    const fromStats = [...expected.values()].filter((v) => v >= FIRST).sort((a, b) => a - b);
    assert.deepEqual(fromStats, Array.from({ length: counters }, (_, i) => FIRST + i), 'each Stats number is exported once');
  });

  test('series read the right Stats fields', { timeout: 5000 }, async () => {
    const stats = new Stats();
    stats.dropped[DropReason.QueueFull] = 3;
    stats.publishesRejected.http[PublishRejectReason.Forbidden] = 4;
    stats.upgradesRejected[UpgradeRejectReason.Draining] = 5;
    stats.policyCloses[PolicyCloseReason.TokenExpired] = 6;
    stats.busConnected.subscriber = 1;
    stats.connectionsOpen = 7;
    stats.deliveries = 8;
    const got = await scrape(sources(stats, 'memory'));
    assert.equal(got.get('hubcast_messages_dropped_total{reason="queue_full"}'), 3);
    assert.equal(got.get('hubcast_messages_dropped_total{reason="evicted"}'), 0);
    assert.equal(got.get('hubcast_publishes_rejected_total{source="http",reason="forbidden"}'), 4);
    assert.equal(got.get('hubcast_publishes_rejected_total{source="ws",reason="forbidden"}'), 0);
    assert.equal(got.get('hubcast_upgrades_rejected_total{reason="draining"}'), 5);
    assert.equal(got.get('hubcast_clients_closed_total{reason="token_expired"}'), 6);
    assert.equal(got.get('hubcast_bus_connected{connection="subscriber"}'), 1);
    assert.equal(got.get('hubcast_bus_connected{connection="publisher"}'), 0);
    assert.equal(got.get('hubcast_connections_open'), 7);
    assert.equal(got.get('hubcast_deliveries_total'), 8);
    assert.equal(got.get('hubcast_channels'), 1001);
    assert.equal(got.get('hubcast_subscriptions'), 1002);
    assert.equal(got.get('hubcast_ready'), 1);
    // The info gauge exports only the bus this gateway runs.
    assert.equal(got.get('hubcast_info{bus="memory"}'), 1);
    assert.equal(got.has('hubcast_info{bus="redis"}'), false);
  });

  test('a counter is exported for every label value, at 0 before anything happened', { timeout: 5000 }, async () => {
    const got = await scrape(sources(new Stats()));
    for (const m of METRICS.filter((m) => m.type === 'counter')) {
      const combos = m.labels.reduce((n, l) => n * l.values.length, 1);
      const exported = [...got.keys()].filter((k) => k === m.name || k.startsWith(`${m.name}{`));
      assert.equal(exported.length, combos, m.name);
      for (const k of exported) assert.equal(got.get(k), 0, k);
    }
  });

  test('names follow hubcast_<name>_<unit>; counters end in _total', { timeout: 5000 }, () => {
    assert.equal(new Set(METRICS.map((m) => m.name)).size, METRICS.length);
    for (const m of METRICS) {
      assert.match(m.name, /^hubcast_[a-z]+(_[a-z]+)*$/);
      assert.equal(m.name.endsWith('_total'), m.type === 'counter', m.name);
    }
  });

  test('a help text that lists a label set lists all of it, from the enum', { timeout: 5000 }, () => {
    for (const m of METRICS) {
      for (const l of m.labels) {
        const listed = l.values.filter((v) => new RegExp(`\\b${v}\\b`).test(m.help));
        if (listed.length > 0) assert.deepEqual(listed, l.values, `${m.name} help lists every ${l.name}: ${m.help}`);
      }
    }
    const rejected = METRICS.find((m) => m.name === 'hubcast_publishes_rejected_total')!;
    assert.ok(rejected.help.includes(Object.values(PublishRejectReason).join(', ')), rejected.help);
    // Policy closes carry the close code of their Disconnect entry.
    const closed = METRICS.find((m) => m.name === 'hubcast_clients_closed_total')!;
    assert.ok(closed.help.includes(`rate_limited: ${Disconnect.RateLimited.code}, token_expired: ${Disconnect.TokenExpired.code}`), closed.help);
  });
});

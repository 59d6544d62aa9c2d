// buckets.ts and its exposition in metrics.ts: the fan-out histogram, counted cheaply, scrapes
// exactly as prom-client's own Histogram would with the same observations.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { Buckets } from '../../services/gateway/src/buckets.js';
import { FANOUT, createMetrics } from '../../services/gateway/src/metrics.js';
import { Stats } from '../../services/gateway/src/stats.js';
import { mulberry32 } from '../helpers/random.js';

const lines = (text: string): string[] => text.split('\n').filter((l) => l.includes(FANOUT.name));

describe('Buckets', () => {
  test('bounds are inclusive (le); past the last bound is +Inf; sum and count', { timeout: 5000 }, () => {
    const b = new Buckets([1, 2]);
    for (const v of [0, 1, 1.5, 2, 3]) b.observe(v);
    assert.deepEqual(
      b.series('h').map((s) => [s.metricName, s.labels.le, s.value]),
      [
        ['h_bucket', 1, 2],
        ['h_bucket', 2, 4],
        ['h_bucket', '+Inf', 5],
        ['h_sum', undefined, 7.5],
        ['h_count', undefined, 5],
      ],
    );
    b.reset();
    assert.deepEqual(b.series('h').map((s) => s.value), [0, 0, 0, 0, 0]);
  });

  test('the gateway scrape equals prom-client\'s Histogram for the same observations, text and JSON', { timeout: 5000 }, async () => {
    const metrics = createMetrics({ stats: new Stats(), busKind: 'memory', isReady: () => true, channelCount: () => 0, subscriptionCount: () => 0 });
    const registry = new Registry();
    const reference = new Histogram({ name: FANOUT.name, help: FANOUT.help, buckets: [...FANOUT.buckets!], registers: [registry] });
    assert.deepEqual(lines(await metrics.registry.metrics()), lines(await registry.metrics()), 'empty');
    const rnd = mulberry32(13);
    const bounds = FANOUT.buckets!;
    // Random values, and every bound itself (the edge of each bucket).
    const values = [...bounds, ...Array.from({ length: 500 }, () => rnd() ** 4 * 0.2)];
    for (const v of values) {
      metrics.observeFanout(v);
      reference.observe(v);
    }
    assert.deepEqual(lines(await metrics.registry.metrics()), lines(await registry.metrics()));
    // The same series; prom-client's buckets also carry `exemplar: null`, which the gateway never sets.
    const json = async (r: Registry): Promise<unknown> => {
      const m = (await r.getMetricsAsJSON()).find((x) => x.name === FANOUT.name)!;
      return { ...m, values: m.values.map((v) => ({ metricName: (v as { metricName?: string }).metricName, labels: v.labels, value: v.value })) };
    };
    assert.deepEqual(await json(metrics.registry), await json(registry));
  });
});

// Keeps README.md and the registries in step: every close code, error code, drop and eviction
// reason, config variable and metric is documented, and nothing documented is missing from code.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CloseCode, Disconnect, DropReason, ErrorCode, EvictReason, Refusal } from '../../services/gateway/src/codes.js';
import { CONFIG_VARIABLES, SETTINGS } from '../../services/gateway/src/config.js';
import { METRICS, createMetrics } from '../../services/gateway/src/metrics.js';
import { Stats } from '../../services/gateway/src/stats.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const README = readFileSync(`${ROOT}README.md`, 'utf8');

/** The rows of the markdown table that follows a heading line. */
function table(heading: string): string[][] {
  const lines = README.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading || l.trim().startsWith(heading));
  assert.ok(start >= 0, `README has a section "${heading}"`);
  const rows: string[][] = [];
  let inTable = false;
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('|')) {
      inTable = true;
      rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
    } else if (inTable) {
      break;
    } else if (line.startsWith('#')) {
      break;
    }
  }
  assert.ok(rows.length > 2, `README section "${heading}" has a table`);
  return rows.slice(2); // header and separator
}

const unquote = (cell: string): string => cell.replace(/^`|`$/g, '');

describe('README documents the registries', () => {
  test('close codes: README rows and CloseCode entries match, name and number', () => {
    const rows = table('### Close codes').map(([code, name]) => [Number(code), name]);
    assert.deepEqual(
      rows.sort(),
      Object.entries(CloseCode)
        .map(([name, code]) => [code, name])
        .sort(),
    );
  });

  test('close reasons: each row names the reasons of the Disconnect entries with its code, and only those', () => {
    const documented = table('### Close codes').flatMap(([code, , when]) =>
      [...when!.matchAll(/reason `([^`]+)`/gi)].map((m) => `${code} ${m[1]}`),
    );
    const sent = Object.values(Disconnect).flatMap((d) => (d.code === null ? [] : [`${d.code} ${d.reason}`]));
    assert.deepEqual([...new Set(documented)].sort(), [...new Set(sent)].sort());
    // Terminates send no close frame: the text under the table names each one's reason.
    const section = README.slice(README.indexOf('### Close codes'), README.indexOf('### Error codes'));
    for (const d of Object.values(Disconnect)) {
      if (d.code === null) assert.ok(section.includes(`\`${d.reason}\``), `README names the terminate "${d.reason}"`);
    }
  });

  test('error codes: README rows and ErrorCode values match', () => {
    const documented = table('### Error codes').map(([code]) => unquote(code!));
    assert.deepEqual(documented.sort(), Object.values(ErrorCode).sort());
  });

  test('HTTP status codes: every documented (status, code) pair is a Refusal entry, and every entry with a status is documented', () => {
    const documented = new Set(
      table('### HTTP status codes')
        .filter(([, code]) => code !== '—')
        .map(([status, code]) => `${Number(status)} ${unquote(code!)}`),
    );
    const registry = new Set(
      Object.values(Refusal)
        .filter((r): r is typeof r & { status: number } => 'status' in r)
        .map((r) => `${r.status} ${r.code}`),
    );
    assert.deepEqual([...documented].sort(), [...registry].sort());
    for (const entry of Object.values(Refusal)) assert.ok(Object.values(ErrorCode).includes(entry.code), entry.code);
  });

  test('drop and eviction reasons match', () => {
    const drop = table('Drop reasons').map(([r]) => unquote(r!));
    assert.deepEqual(drop.sort(), Object.values(DropReason).sort());
    const evict = table('Eviction reasons').map(([r]) => unquote(r!));
    assert.deepEqual(evict.sort(), Object.values(EvictReason).sort());
  });

  test('config: every setting is documented with its spec default and a meaning', () => {
    const rows = table('## Configuration');
    assert.deepEqual(rows.map(([v]) => unquote(v!)).sort(), [...CONFIG_VARIABLES].sort());
    const specs = new Map(Object.values(SETTINGS).map((s) => [s.variable as string, s]));
    for (const [variable, fallback, meaning] of rows) {
      const spec = specs.get(unquote(variable!))!;
      const documented = spec.fallback === undefined ? 'unset' : `\`${String(spec.fallback)}\``;
      assert.equal(fallback, documented, `default of ${variable}`);
      assert.ok((meaning ?? '').length > 0, `meaning of ${variable}`);
    }
  });

  test('metrics: every hubcast_* metric is documented, and every documented one exists', async () => {
    const documented = table('## Metrics').map(([m]) => unquote(m!));
    const metrics = createMetrics({
      stats: new Stats(),
      busKind: 'memory',
      isReady: () => true,
      channelCount: () => 0,
      subscriptionCount: () => 0,
    });
    const exported = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('hubcast_'));
    assert.deepEqual(documented.sort(), exported.sort());
    for (const name of exported) assert.match(name, /^hubcast_[a-z_]+$/);
  });

  test('metrics: README rows match the metric table: name, type, label names and label values', () => {
    const rows = new Map(table('## Metrics').map(([m, type, meaning]) => [unquote(m!), { type: type!, meaning: meaning! }]));
    assert.deepEqual([...rows.keys()].sort(), METRICS.map((m) => m.name).sort());
    for (const metric of METRICS) {
      const { type, meaning } = rows.get(metric.name)!;
      assert.equal(type, metric.type, `type of ${metric.name}`);
      // Backticked lower-case words in the row are label names or label values of this metric.
      const quoted = new Set([...meaning.matchAll(/`([a-z][a-z0-9_]*)`/g)].map((m) => m[1]!));
      const known = new Set(metric.labels.flatMap((l) => [l.name, ...l.values]));
      for (const word of quoted) assert.ok(known.has(word), `${metric.name}: \`${word}\` is no label or label value of it`);
      for (const l of metric.labels) {
        assert.ok(quoted.has(l.name), `${metric.name}: the row names its label \`${l.name}\``);
        // Where the row lists a label's values, it lists all of them.
        const listed = l.values.filter((v) => quoted.has(v));
        if (listed.length > 0) assert.deepEqual(listed, l.values, `${metric.name}: every ${l.name} value is listed`);
      }
    }
  });
});

describe('README code map', () => {
  const start = README.indexOf('\n## Code map\n');
  const end = README.indexOf('\n## ', start + 1);
  const section = README.slice(start, end);
  const named = new Set([...section.matchAll(/`([^`\s]+\.ts)`/g)].map((m) => m[1]!));
  /** Source files under dir (repository-relative), recursively. */
  const sources = (dir: string): string[] =>
    readdirSync(`${ROOT}${dir}`, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => f.split('\\').join('/'));

  test('names every gateway file (relative to services/gateway/src), every tool and every test helper', () => {
    assert.ok(start >= 0, 'README has a "## Code map" section');
    const gateway = sources('services/gateway/src');
    const full = [...sources('tools').map((f) => `tools/${f}`), ...sources('test/helpers').map((f) => `test/helpers/${f}`)];
    assert.ok(gateway.includes('main.ts') && full.includes('tools/kit/src/process.ts'), 'the walk finds the sources');
    assert.deepEqual(gateway.filter((f) => !named.has(f)), [], 'gateway files missing from the code map');
    assert.deepEqual(full.filter((f) => !named.has(f)), [], 'tool and helper files missing from the code map');
  });

  test('every file it names exists', () => {
    // A gateway file may be named by its path under src/ or, inside a row about its folder, by its base name.
    const gateway = sources('services/gateway/src');
    const exists = (f: string): boolean =>
      /^(tools|test)\//.test(f) ? existsSync(`${ROOT}${f}`) : gateway.some((g) => g === f || g.endsWith(`/${f}`));
    const missing = [...named].filter((f) => !exists(f));
    assert.deepEqual(missing, []);
  });
});

// Keeps README.md and the registries in step: every close code, error code, drop and eviction
// reason, config variable and metric is documented, and nothing documented is missing from code.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CloseCode, Disconnect, DropReason, ErrorCode, EvictReason } from '../../services/gateway/src/codes.js';
import { CONFIG_VARIABLES, loadConfig } from '../../services/gateway/src/config.js';
import { createMetrics } from '../../services/gateway/src/metrics.js';
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

  test('drop and eviction reasons match', () => {
    const drop = table('Drop reasons').map(([r]) => unquote(r!));
    assert.deepEqual(drop.sort(), Object.values(DropReason).sort());
    const evict = table('Eviction reasons').map(([r]) => unquote(r!));
    assert.deepEqual(evict.sort(), Object.values(EvictReason).sort());
  });

  test('config: every variable is documented with its real default', () => {
    const rows = table('## Configuration');
    assert.deepEqual(rows.map(([v]) => unquote(v!)).sort(), [...CONFIG_VARIABLES].sort());
    const defaults = loadConfig({}) as unknown as Record<string, unknown>;
    const key = (name: string): string => name.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    for (const [variable, fallback] of rows) {
      const actual = defaults[key(unquote(variable!))];
      assert.equal(unquote(fallback!), actual === undefined ? 'unset' : String(actual), `default of ${variable}`);
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
    const missing = [...named].filter((f) => !existsSync(/^(tools|test)\//.test(f) ? `${ROOT}${f}` : `${ROOT}services/gateway/src/${f}`));
    assert.deepEqual(missing, []);
  });
});

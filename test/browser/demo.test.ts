// The demo page in Debian's chromium (playwright-core) against the loopback cluster: three
// gateways behind HAProxy, the page and the bundle served by the gateways through HAProxy. It
// connects on load, names the gateway holding its WebSocket, shows a message published with
// POST /publish, revalidates its files with 304s, and logs no console error. A page on another
// origin (served by a second HTTP server) is refused, and its SDK reports it and backs off.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { STATIC_DIR } from '../../services/gateway/src/static.js';
import { type Cluster, startCluster } from '../../tools/cluster/src/cluster.js';
import { type Browser, launchChromium, pageErrors } from '../../tools/kit/src/browser.js';
import { parseMetrics } from '../../tools/kit/src/metrics.js';
import { waitUntil, within } from '../../tools/kit/src/wait.js';

const publish = (cluster: Cluster, channel: string, data: unknown): Promise<Response> =>
  fetch(`${cluster.lb}/publish`, { method: 'POST', body: JSON.stringify({ channel, data }) });

/** The sum of one series over every running gateway of the cluster. */
async function clusterMetric(cluster: Cluster, series: string): Promise<number> {
  let sum = 0;
  for (const g of cluster.gateways.filter((c) => c.proc.child.exitCode === null)) sum += parseMetrics(await (await fetch(`${g.url}/metrics`)).text()).get(series) ?? 0;
  return sum;
}

describe('demo page in chromium, through HAProxy', { timeout: 120_000 }, () => {
  let cluster: Cluster;
  let browser: Browser;
  /** "status method path" of every request HAProxy logged: what the gateways answered. */
  const served: string[] = [];
  before(async () => {
    const onLog = (name: string, line: string): void => {
      const m = / (\d{3}) \d+ .* (GET|HEAD|POST) (\S+) HTTP\/1\.1$/.exec(line);
      if (name === 'haproxy' && m) served.push(`${m[1]} ${m[2]} ${m[3]}`);
    };
    // DRAIN_MS above HAProxy's detection (fall 2 x inter 1 s): the page's reconnect never meets the closing gateway.
    [cluster, browser] = await Promise.all([startCluster({ gatewayEnv: { LOG_LEVEL: 'warn', DRAIN_MS: '3500' }, onLog }), launchChromium()]);
  });
  after(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  test('connects on load, names its gateway, shows a POST /publish message; a reload revalidates with 304; no console errors', async (t) => {
    const page = await browser.newPage();
    t.after(() => page.close());
    const errors = pageErrors(page);
    const loaded = (): string[] => served.filter((s) => / (\/|\/hubcast\.js)$/.test(s));

    await page.goto(`${cluster.lb}/`);
    await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#state').textContent(), 'Connected');
    await page.locator('#subscriptions li[data-channel="news"] .sub-state', { hasText: 'subscribed' }).waitFor();
    // The welcome names the gateway behind HAProxy that holds this WebSocket: one of the three.
    const named = (await page.locator('#gateway').textContent()) ?? '';
    const addresses = cluster.gateways.map((g) => new URL(g.url).host);
    assert.ok(addresses.some((a) => named.startsWith(`${a} `)), `"${named}" names one of ${addresses.join(', ')}`);

    assert.equal((await publish(cluster, 'news', { from: 'curl', n: 1 })).status, 202);
    const row = page.locator('#messages tr[data-channel="news"]', { hasText: '"from":"curl"' });
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await row.locator('td.data').textContent(), '{"from":"curl","n":1}');

    // Publishing from the page's own form: the SDK's publish, acked.
    await page.fill('#publish-data', '{"from":"page"}');
    await page.click('#publish-form button[type="submit"]');
    await page.locator('#publish-result', { hasText: 'Published to news.' }).waitFor();
    await page.locator('#messages tr', { hasText: '"from":"page"' }).waitFor();

    assert.deepEqual(loaded(), ['200 GET /', '200 GET /hubcast.js']);
    await page.reload();
    await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    // HAProxy logs a request when it completes; the page is connected, so both have.
    await waitUntil(() => loaded().length >= 4, { timeoutMs: 5000, what: 'HAProxy to log the reload' });
    assert.deepEqual(loaded().slice(2), ['304 GET /', '304 GET /hubcast.js'], 'no-cache + ETag: revalidated, not downloaded again');
    assert.deepEqual(errors, []);
  });

  test('its gateway stopped (SIGTERM): the page reconnects to another, names it, and shows the recovery and the offsets', async (t) => {
    const page = await browser.newPage();
    t.after(() => page.close());
    const errors = pageErrors(page);
    await page.goto(`${cluster.lb}/?channels=news,sports`);
    await page.locator('#events li', { hasText: 'sports: subscribed' }).waitFor({ timeout: 15_000 });
    const first = (await page.locator('#gateway').textContent())!.split(' ')[0]!;
    const victim = cluster.gateways.find((g) => new URL(g.url).host === first);
    assert.ok(victim, `the page names a gateway of the cluster (${first})`);
    for (const n of [1, 2]) assert.equal((await publish(cluster, 'news', { n })).status, 202);
    await page.locator('#messages tr[data-channel="news"]', { hasText: '"n":2' }).waitFor();

    victim.proc.child.kill('SIGTERM');
    await page.locator('#events li', { hasText: 'Disconnected: 1001' }).waitFor({ timeout: 15_000 });
    // Published while the page is away: the resubscribe recovers it.
    assert.equal((await publish(cluster, 'news', { n: 3 })).status, 202);
    await page.locator('#events li', { hasText: 'news: resumed after the reconnect, recovered: true' }).waitFor({ timeout: 15_000 });
    await page.locator('#state[data-state="connected"]').waitFor();
    const second = (await page.locator('#gateway').textContent())!.split(' ')[0]!;
    assert.notEqual(second, first, 'another gateway answered');
    assert.ok(cluster.gateways.some((g) => new URL(g.url).host === second));
    assert.equal((await publish(cluster, 'news', { n: 4 })).status, 202);
    await page.locator('#messages tr[data-channel="news"]', { hasText: '"n":4' }).waitFor();
    const rows = await page.locator('#messages tr[data-channel="news"]').evaluateAll((trs) =>
      trs.map((tr) => [tr.getAttribute('data-offset'), tr.querySelector('td.data')!.textContent]),
    );
    const offsets = rows.reverse().map(([offset]) => Number(offset));
    assert.deepEqual(rows.map(([, data]) => data), ['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}'], 'each once, in order (newest on top)');
    assert.deepEqual(offsets, offsets.map((_, i) => offsets[0]! + i), 'consecutive offsets, shown');

    assert.equal(await within(victim.proc.exited, 15_000, 'the stopped gateway to exit'), 0);
    const shot = join(tmpdir(), 'hubcast-demo.png');
    await page.screenshot({ path: shot });
    t.diagnostic(`screenshot: ${shot}`);
    assert.deepEqual(errors, []);
  });

  test('a page on an origin not allowed is refused (403); the SDK reports connect_failed and backs off, no tight loop', async (t) => {
    // A second HTTP server on another port: its page loads the same bundle from its own origin
    // and opens the cluster's WebSocket, which the origin rule refuses (ALLOWED_ORIGINS unset).
    const bundle = readFileSync(new URL('hubcast.js', STATIC_DIR));
    const wsUrl = `${cluster.lb.replace('http:', 'ws:')}/ws`;
    const html = `<!doctype html><title>elsewhere</title><script type="module">
      import { HubcastClient } from './hubcast.js';
      window.attempts = 0;
      window.errors = [];
      class Counted extends WebSocket { constructor(url) { super(url); window.attempts++; } }
      const client = new HubcastClient(${JSON.stringify(wsUrl)}, { WebSocket: Counted });
      client.on('error', (err) => window.errors.push(err.code));
      client.on('connected', () => window.errors.push('connected'));
      window.client = client;
      client.connect();
    </script>`;
    const foreign: Server = createServer((req, res) => {
      const js = req.url === '/hubcast.js';
      res.writeHead(200, { 'content-type': js ? 'text/javascript' : 'text/html' });
      res.end(js ? bundle : html);
    });
    await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
    t.after(() => foreign.close());
    const forbidden = 'hubcast_upgrades_rejected_total{reason="forbidden"}';
    const before = await clusterMetric(cluster, forbidden);

    const page = await browser.newPage();
    t.after(() => page.close());
    await page.goto(`http://127.0.0.1:${(foreign.address() as AddressInfo).port}/`);
    await page.waitForFunction(() => (globalThis as unknown as { errors: string[] }).errors.length >= 2, undefined, { timeout: 10_000 });
    // At the defaults (first window 500 ms, doubling to 20 s) a few attempts fit in 3 s; a client
    // retrying without backoff would make hundreds.
    await sleep(3000);
    const seen = await page.evaluate(() => {
      const w = globalThis as unknown as { attempts: number; errors: string[]; client: { state: string; disconnect(): void } };
      const out = { attempts: w.attempts, errors: [...w.errors], state: w.client.state };
      w.client.disconnect();
      return out;
    });
    t.diagnostic(`foreign origin: ${seen.attempts} attempts in about 3.5 s`);
    assert.ok(seen.attempts >= 2 && seen.attempts <= 10, `${seen.attempts} attempts: retried, with backoff`);
    assert.deepEqual(new Set(seen.errors), new Set(['connect_failed']), 'every attempt reported; never connected');
    assert.equal(seen.errors.length, seen.attempts);
    assert.equal(seen.state, 'connecting', 'still trying, between attempts');
    assert.equal((await clusterMetric(cluster, forbidden)) - before, seen.attempts, 'each attempt refused by the origin rule (403)');
  });
});

// The compose topology on loopback, from the same deploy/ files: Redis, three gateways on
// 127.0.0.2/.3/.4, HAProxy running deploy/haproxy/haproxy.cfg (only addresses come from the
// environment), and Prometheus scraping the gateways with deploy/prometheus/alerts.yml.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Cluster, startCluster } from '../../tools/cluster/src/cluster.js';
import { CloseCode, Disconnect } from '../../services/gateway/src/codes.js';
import { TestClient } from '../helpers/client.js';
import { alertRules, dashboardQueries, expandGrafana } from '../helpers/dashboard.js';
import { parseMetrics } from '../helpers/gateway.js';
import { waitUntil, within } from '../helpers/wait.js';

const CLIENTS = 12;
const CHANNEL = 'e2e';
// Long enough that HAProxy (inter 1s, fall 2) sees /readyz 503 well before clients are closed.
const DRAIN_MS = 7000;

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

describe('cluster on loopback: HAProxy + 3 gateways + Prometheus', { timeout: 120_000 }, () => {
  let cluster: Cluster;
  const clients: TestClient[] = [];

  before(async () => {
    // CLOSE_TIMEOUT_MS is long so that the evicted slow client, which resumes reading only once
    // the eviction shows in /metrics, still gets its close frame on a loaded machine (a shorter
    // bound terminated it first: 1006).
    cluster = await startCluster({
      scrapeInterval: '1s',
      gatewayEnv: { DRAIN_MS: String(DRAIN_MS), SLOW_CLIENT_EVICT_MS: '1000', CLOSE_TIMEOUT_MS: '15000', LOG_LEVEL: 'warn' },
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  const lbWs = (): string => `${cluster.lb.replace('http://', 'ws://')}/ws?channels=${CHANNEL}`;

  async function gatewayMetric(url: string, series: string): Promise<number> {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) });
    return parseMetrics(await res.text()).get(series) ?? 0;
  }
  const openConnections = (url: string): Promise<number> => gatewayMetric(url, 'hubcast_connections_open');

  async function publishThroughLb(data: unknown): Promise<void> {
    const res = await fetch(`${cluster.lb}/publish`, { method: 'POST', body: JSON.stringify({ channel: CHANNEL, data }) });
    assert.equal(res.status, 202);
  }

  async function query(expr: string): Promise<PromResult[]> {
    const url = `${cluster.prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`;
    const body = (await (await fetch(url)).json()) as { status: string; error?: string; data: { result: PromResult[] } };
    assert.equal(body.status, 'success', `${expr}: ${body.error}`);
    return body.data.result;
  }

  test('clients through the load balancer spread over all three gateways; a broadcast reaches each', async () => {
    for (let i = 0; i < CLIENTS; i++) clients.push(await TestClient.connect(lbWs()));
    const perGateway = await Promise.all(cluster.gateways.map((g) => openConnections(g.url)));
    assert.equal(perGateway.reduce((a, b) => a + b, 0), CLIENTS);
    for (const n of perGateway) assert.ok(n >= 1, `every gateway holds clients: ${perGateway.join(', ')}`);

    await publishThroughLb({ n: 1 });
    for (const c of clients) await c.waitFor((m) => m.channel === CHANNEL && (m.data as { n: number }).n === 1);
  });

  test('every dashboard query parses and runs in the live Prometheus', async () => {
    const queries = dashboardQueries();
    assert.ok(queries.length >= 15);
    for (const q of queries) await query(expandGrafana(q.expr));
    // The alert rules are loaded and evaluate without error against live data.
    await waitUntil(
      async () => {
        const res = (await (await fetch(`${cluster.prometheus}/api/v1/rules?type=alert`)).json()) as {
          data: { groups: { rules: { name: string; health: string }[] }[] };
        };
        const rules = res.data.groups.flatMap((g) => g.rules);
        return rules.length === alertRules().length && rules.every((r) => r.health === 'ok');
      },
      { timeoutMs: 15_000, what: 'every alert rule to evaluate with health ok' },
    );
    // Prometheus scrapes all three gateways.
    await waitUntil(async () => (await query('sum(up{job="hubcast-gateway"})'))[0]?.value[1] === '3', {
      timeoutMs: 15_000,
      what: 'Prometheus to scrape three gateways',
    });
  });

  test('after a slow client, the dashboard drop-rate and eviction-rate queries are non-zero', async () => {
    const target = cluster.gateways[0]!;
    const channel = 'slow';
    const slow = await TestClient.connect(`${target.url.replace('http://', 'ws://')}/ws?channels=${channel}`);
    clients.push(slow);
    slow.socket.pause();
    const pad = 'x'.repeat(16 * 1024);
    // ~10 MB at a paused reader: past the socket buffers and the 1 MiB queue.
    for (let n = 0; n < 600; n++) {
      const res = await fetch(`${target.url}/publish`, { method: 'POST', body: JSON.stringify({ channel, data: { n, pad } }) });
      assert.equal(res.status, 202);
    }
    // Still behind after SLOW_CLIENT_EVICT_MS: evicted. Then it reads up to the close frame.
    await waitUntil(async () => (await gatewayMetric(target.url, 'hubcast_clients_evicted_total{reason="slow_consumer"}')) === 1, {
      timeoutMs: 10_000,
      what: 'the slow client to be evicted',
    });
    slow.socket.resume();
    assert.equal((await within(slow.closed, 10_000, 'the close frame')).code, 1013, 'evicted as a slow consumer');

    const panel = (title: string): string => {
      const q = dashboardQueries().find((d) => d.panel === title);
      assert.ok(q, `panel ${title}`);
      return expandGrafana(q.expr);
    };
    for (const title of ['Drop rate by reason', 'Drop rate by gateway', 'Eviction rate by reason', 'Eviction rate by gateway']) {
      await waitUntil(async () => (await query(panel(title))).some((r) => Number(r.value[1]) > 0), {
        timeoutMs: 20_000,
        intervalMs: 500,
        what: `"${title}" to show a non-zero rate`,
      });
    }
    const byReason = await query(panel('Eviction rate by reason'));
    assert.ok(byReason.some((r) => r.metric.reason === 'slow_consumer' && Number(r.value[1]) > 0));
    const byGateway = await query(panel('Drop rate by gateway'));
    assert.ok(byGateway.some((r) => r.metric.instance === new URL(target.url).host && Number(r.value[1]) > 0));
  });

  test('SIGTERM one gateway: HAProxy takes it out via /readyz, its clients get 1001, reconnect, broadcasts go on', async () => {
    const lbClients = clients.slice(0, CLIENTS);
    const victim = cluster.gateways[1]!;
    const onVictim = await openConnections(victim.url);
    assert.ok(onVictim >= 1);
    const victimAddr = new URL(victim.url).host;

    const closed: { client: TestClient; code: number; reason: string }[] = [];
    for (const client of lbClients) void client.closed.then((c) => closed.push({ client, ...c }));
    victim.proc.child.kill('SIGTERM');

    // Within the drain: HAProxy marks it DOWN while its clients are still connected.
    await waitUntil(async () => (await cluster.lbServers()).some((s) => s.addr === victimAddr && s.status.startsWith('DOWN')), {
      timeoutMs: DRAIN_MS - 1500,
      intervalMs: 100,
      what: 'HAProxy to mark the draining gateway DOWN',
    });
    assert.equal(closed.length, 0, 'no client is closed before HAProxy has taken the gateway out');

    // After DRAIN_MS its clients, and only they, are closed with 1001.
    await waitUntil(() => closed.length === onVictim, { timeoutMs: DRAIN_MS + 5000, what: `${onVictim} clients closed` });
    assert.equal(await victim.proc.exited, 0, 'the gateway drains and exits 0');
    assert.equal(closed.length, onVictim);
    for (const c of closed) {
      assert.equal(c.code, CloseCode.GoingAway);
      assert.equal(c.reason, Disconnect.Shutdown.reason);
    }

    // They reconnect through the load balancer, which sends them to the two survivors.
    const gone = new Set(closed.map((c) => c.client));
    const now = lbClients.filter((c) => !gone.has(c));
    for (let i = 0; i < gone.size; i++) {
      const again = await TestClient.connect(lbWs());
      clients.push(again);
      now.push(again);
    }
    const survivors = cluster.gateways.filter((g) => g !== victim);
    const perGateway = await Promise.all(survivors.map((g) => openConnections(g.url)));
    assert.equal(perGateway.reduce((a, b) => a + b, 0), CLIENTS, `all clients on the survivors: ${perGateway.join(', ')}`);

    await publishThroughLb({ n: 2 });
    for (const c of now) await c.waitFor((m) => m.channel === CHANNEL && (m.data as { n: number }).n === 2);
  });
});

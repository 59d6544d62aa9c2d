// docker-compose.yml itself, built and run with three gateway replicas through testcontainers.
// It needs a Docker engine; without one the suite is skipped (reported as skipped, not passed).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { DockerComposeEnvironment, type StartedDockerComposeEnvironment } from 'testcontainers';
import { type LbServer, readLbServers } from '../../tools/cluster/src/cluster.js';
import { TestClient } from '../helpers/client.js';
import { ROOT } from '../helpers/dashboard.js';
import { freePort, waitUntil } from '../helpers/wait.js';

function dockerUnavailable(): string | false {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    return false;
  } catch {
    return 'no Docker engine answers `docker info`: docker-compose.yml was not brought up (the loopback e2e test covers the same files)';
  }
}

const REPLICAS = 3;
const CHANNEL = 'compose';

const TITLE = 'HAProxy finds all three replicas and a broadcast through it reaches clients on each';

describe('docker compose up --scale gateway=3 (testcontainers)', { timeout: 600_000 }, () => {
  const why = dockerUnavailable();
  if (why) {
    test(TITLE, { skip: why }, () => undefined);
    return;
  }
  let env: StartedDockerComposeEnvironment | undefined;
  let lb = '';
  let stats = '';

  before(async () => {
    const [lbPort, statsPort, promPort, grafanaPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    lb = `127.0.0.1:${lbPort}`;
    stats = `http://127.0.0.1:${statsPort}`;
    env = await new DockerComposeEnvironment(ROOT, 'docker-compose.yml')
      .withBuild()
      .withEnvironment({
        HUBCAST_PORT: String(lbPort),
        HUBCAST_STATS_PORT: String(statsPort),
        PROMETHEUS_PORT: String(promPort),
        GRAFANA_PORT: String(grafanaPort),
      })
      .withClientOptions({ commandOptions: ['--scale', `gateway=${REPLICAS}`] })
      .withStartupTimeout(300_000)
      .up();
  });
  after(async () => {
    await env?.down({ timeout: 30_000 });
  });

  const upServers = async (): Promise<LbServer[]> => (await readLbServers(stats)).filter((s) => s.status === 'UP');

  test(TITLE, async () => {
    await waitUntil(async () => (await upServers().catch(() => [])).length === REPLICAS, {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: `HAProxy to see ${REPLICAS} gateways UP`,
    });
    const clients: TestClient[] = [];
    after(() => clients.forEach((c) => c.close()));
    for (let i = 0; i < REPLICAS * 3; i++) clients.push(await TestClient.connect(`ws://${lb}/ws?channels=${CHANNEL}`));
    const servers = await upServers();
    assert.ok(servers.every((s) => s.sessions >= 1), `clients spread over every replica: ${JSON.stringify(servers)}`);

    const res = await fetch(`http://${lb}/publish`, { method: 'POST', body: JSON.stringify({ channel: CHANNEL, data: 'hello' }) });
    assert.equal(res.status, 202);
    for (const c of clients) await c.waitFor((m) => m.channel === CHANNEL && m.data === 'hello');
  });
});

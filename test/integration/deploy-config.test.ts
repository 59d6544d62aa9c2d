// The deployment files, checked by the programs that run them: docker-compose, HAProxy,
// promtool. Dashboard and alert queries may only name metrics a live gateway exposes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../../services/gateway/src/config.js';
import { loopbackPrometheusConfig } from '../../tools/cluster/src/prometheus.js';
import { requireProgram } from '../../tools/kit/src/process.js';
import { ROOT, alertRules, dashboard, dashboardQueries, metricNames } from '../helpers/dashboard.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/wait.js';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function run(command: string, args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(command, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function ok(command: string, args: string[], env: Record<string, string> = {}): string {
  const r = run(command, args, env);
  assert.equal(r.status, 0, `${command} ${args.join(' ')} failed:\n${r.out}`);
  return r.out;
}

const read = (path: string): string => readFileSync(`${ROOT}${path}`, 'utf8');

describe('docker-compose.yml', () => {
  before(() => requireProgram('docker-compose'));
  interface Service {
    image?: string;
    build?: { dockerfile?: string };
    container_name?: string;
    ports?: unknown[];
    expose?: string[];
    depends_on?: Record<string, { condition: string }>;
    stop_grace_period?: string;
    environment?: Record<string, string>;
    volumes?: (string | { source: string; target: string })[];
    healthcheck?: { test: string[] };
  }
  const config = (): { services: Record<string, Service> } => parse(ok('docker-compose', ['-f', 'docker-compose.yml', 'config']));

  test('docker-compose config accepts it, with every service the cluster needs', () => {
    const services = config().services;
    assert.deepEqual(Object.keys(services).sort(), ['gateway', 'grafana', 'lb', 'prometheus', 'redis']);
    assert.match(services.redis!.image!, /^redis:7/);
    assert.ok(services.redis!.healthcheck, 'redis has a health check');
  });

  test('the gateway can scale: no container_name, no fixed host port', () => {
    const gateway = config().services.gateway!;
    assert.equal(gateway.container_name, undefined);
    assert.equal(gateway.ports, undefined, 'a published port would collide at --scale gateway=2');
    assert.deepEqual(gateway.expose, ['8080']);
    assert.equal(gateway.build?.dockerfile, 'services/gateway/Dockerfile');
    assert.equal(gateway.depends_on?.redis?.condition, 'service_healthy');
    assert.equal(gateway.environment?.REDIS_URL, 'redis://redis:6379');
  });

  test('stop_grace_period outlasts the gateway drain and close timeout', () => {
    const gateway = config().services.gateway!;
    const grace = Number(/^(\d+)s$/.exec(gateway.stop_grace_period ?? '')?.[1]) * 1000;
    const bound = Number(gateway.environment!.DRAIN_MS) + Number(gateway.environment!.CLOSE_TIMEOUT_MS) + 5000;
    assert.ok(grace > bound, `stop_grace_period ${grace} ms must exceed the gateway's own bound ${bound} ms`);
  });

  test('lb, prometheus and grafana run from the deploy/ files', () => {
    const services = config().services;
    const mounts = (s: Service): string[] =>
      (s.volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':').slice(0, 2).join(':') : `${v.source}:${v.target}`));
    assert.ok(mounts(services.lb!).includes(`${ROOT}deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg`));
    assert.ok(mounts(services.prometheus!).includes(`${ROOT}deploy/prometheus:/etc/prometheus`));
    assert.ok(mounts(services.grafana!).includes(`${ROOT}deploy/grafana/provisioning:/etc/grafana/provisioning`));
    assert.ok(mounts(services.grafana!).includes(`${ROOT}deploy/grafana/dashboards:/var/lib/grafana/dashboards`));
    assert.equal(services.lb!.ports?.length, 2, 'one port for /ws and /publish, one for stats');
  });
});

describe('docker-compose.redis-cluster.yml (with -f on top of docker-compose.yml)', () => {
  before(() => requireProgram('docker-compose'));
  interface Service {
    image?: string;
    command?: string[];
    entrypoint?: string[];
    environment?: Record<string, string>;
    depends_on?: Record<string, { condition: string }>;
    healthcheck?: { test: string[] };
    restart?: string;
  }
  const config = (): { services: Record<string, Service> } =>
    parse(ok('docker-compose', ['-f', 'docker-compose.yml', '-f', 'docker-compose.redis-cluster.yml', 'config']));
  const nodes = ['redis-1', 'redis-2', 'redis-3', 'redis-4', 'redis-5', 'redis-6'];

  test('docker-compose config accepts the pair: six redis:7 cluster nodes with health checks and a one-shot create', () => {
    const services = config().services;
    for (const name of nodes) {
      const node = services[name]!;
      assert.match(node.image!, /^redis:7/, name);
      assert.ok(node.command!.includes('--cluster-enabled') && node.command!.includes('yes'), `${name} runs in cluster mode`);
      assert.ok(node.healthcheck, `${name} has a health check`);
    }
    const create = services['redis-cluster-create']!;
    assert.match(create.image!, /^redis:7/);
    assert.equal(create.restart, 'no');
    const script = create.entrypoint!.join(' ');
    assert.match(script, /redis-cli --cluster create/);
    assert.match(script, /--cluster-replicas 1 --cluster-yes/);
    for (const name of nodes) {
      assert.ok(script.includes(name), `${name} joins the cluster`);
      assert.equal(create.depends_on?.[name]?.condition, 'service_healthy');
    }
  });

  test('gateways get REDIS_CLUSTER_NODES naming every node, start after the create, and run without REDIS_URL', () => {
    const gateway = config().services.gateway!;
    assert.deepEqual(gateway.environment!.REDIS_CLUSTER_NODES!.split(','), nodes.map((n) => `${n}:6379`));
    assert.equal(gateway.depends_on?.['redis-cluster-create']?.condition, 'service_completed_successfully');
    // The base file's REDIS_URL cannot be removed by an override in compose v1: the entrypoint drops it.
    assert.deepEqual(gateway.entrypoint, ['env', '-u', 'REDIS_URL', 'node', 'dist/services/gateway/src/main.js']);
    const dockerfile = read('services/gateway/Dockerfile');
    assert.ok(dockerfile.includes('ENTRYPOINT ["node", "dist/services/gateway/src/main.js"]'), 'the same program the image runs');
    const { REDIS_URL, ...env } = gateway.environment!;
    assert.ok(REDIS_URL !== undefined);
    assert.throws(() => loadConfig(gateway.environment), /REDIS_CLUSTER_NODES cannot be set together with REDIS_URL/, 'why the entrypoint drops it');
    assert.equal(loadConfig(env).redisClusterNodes?.length, 6, 'what the gateway sees after env -u');
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('services/gateway/Dockerfile');
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const last = stages.at(-1)!;

  test('multi-stage, production dependencies only in the runtime image', () => {
    assert.ok(stages.length >= 2, 'at least a build stage and a runtime stage');
    assert.match(dockerfile, /npm ci --omit=dev/);
    assert.doesNotMatch(last, /npm (ci|install)(?! --omit=dev)/, 'the runtime stage installs nothing with dev dependencies');
    assert.match(last, /COPY --from=deps \/app\/node_modules/);
  });

  test('runs as a non-root user, exec-form entrypoint, health check on /healthz', () => {
    const user = /^USER (\S+)/m.exec(last)?.[1];
    assert.ok(user && user !== 'root' && user !== '0', `USER ${user} must not be root`);
    const entrypoint = /^ENTRYPOINT (.+)$/m.exec(last)?.[1] ?? '';
    assert.deepEqual(JSON.parse(entrypoint), ['node', 'dist/services/gateway/src/main.js'], 'exec form: SIGTERM reaches node');
    assert.match(last, /^HEALTHCHECK [^\n]*\\\n\s+CMD \[/m, 'exec-form health check');
    assert.match(last, /\/healthz/);
  });

  test("the build stage's tsc compiles from what the build context holds (no test/, no docs/)", () => {
    // The Dockerfile copies package files, tsconfig.json and services/gateway; .dockerignore drops test/ and tools/.
    const context = mkdtempSync(join(tmpdir(), 'hubcast-context-'));
    after(() => rmSync(context, { recursive: true, force: true }));
    assert.match(dockerfile, /^COPY services\/gateway \.\/services\/gateway$/m, 'the gateway alone is copied');
    // package.json too: its "type": "module" makes tsc emit ESM, as in the image (import.meta).
    cpSync(`${ROOT}package.json`, join(context, 'package.json'));
    cpSync(`${ROOT}tsconfig.json`, join(context, 'tsconfig.json'));
    cpSync(`${ROOT}services/gateway`, join(context, 'services/gateway'), { recursive: true });
    symlinkSync(`${ROOT}node_modules`, join(context, 'node_modules'));
    assert.match(dockerfile, /RUN npx tsc -p services\/gateway\/tsconfig.json/);
    const r = spawnSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', 'services/gateway/tsconfig.json'], {
      cwd: context,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, `tsc in the build context failed:\n${r.stdout}${r.stderr}`);
    assert.ok(existsSync(join(context, 'dist/services/gateway/src/main.js')), 'the ENTRYPOINT file is built');
  });

  test('.dockerignore keeps the build context small', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['.git', 'node_modules', 'dist', 'test', 'tools']) assert.ok(ignored.includes(entry), `${entry} ignored`);
  });

  describe('the HEALTHCHECK command itself', () => {
    let gateway: GatewayProcess;
    before(async () => {
      gateway = await startGateway({});
    });
    after(() => gateway.kill('SIGKILL'));
    const cmd = (): string[] => JSON.parse(/CMD (\[.+\])\s*$/m.exec(last)![1]!);

    test('exits 0 against a live gateway', () => {
      const [command, ...args] = cmd();
      assert.equal(command, 'node');
      assert.equal(run(process.execPath, args, { PORT: String(gateway.port) }).status, 0);
    });

    test('exits 1 when nothing answers', async () => {
      const [, ...args] = cmd();
      assert.equal(run(process.execPath, args, { PORT: String(await freePort()) }).status, 1);
    });
  });
});

describe('deploy/haproxy/haproxy.cfg', () => {
  before(() => requireProgram('haproxy'));
  test('haproxy -c accepts it with the compose defaults', () => {
    assert.match(ok('haproxy', ['-c', '-f', 'deploy/haproxy/haproxy.cfg']), /Configuration file is valid/);
  });
  test('haproxy -c accepts it with loopback addresses, and rejects a bad one (the variables are read)', () => {
    const loopback = { LB_BIND: '127.0.0.1:18080', LB_STATS_BIND: '127.0.0.1:18404', DNS_SERVER: '127.0.0.1:5353', GATEWAY_PORT: '9000' };
    ok('haproxy', ['-c', '-f', 'deploy/haproxy/haproxy.cfg'], loopback);
    assert.notEqual(run('haproxy', ['-c', '-f', 'deploy/haproxy/haproxy.cfg'], { ...loopback, LB_BIND: 'nowhere:x' }).status, 0);
  });
  test('health-checks /readyz, balances leastconn, finds replicas through DNS, tunnel timeout set', () => {
    const cfg = read('deploy/haproxy/haproxy.cfg');
    assert.match(cfg, /option httpchk GET \/readyz/);
    assert.match(cfg, /balance leastconn/);
    assert.match(cfg, /server-template gw /);
    assert.match(cfg, /resolvers dns/);
    assert.match(cfg, /timeout tunnel /);
  });
});

describe('deploy/prometheus', () => {
  before(() => requireProgram('promtool', 'prometheus'));
  test('promtool check config accepts prometheus.yml', () => {
    ok('promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml']);
  });
  test('promtool check config accepts the loopback variant the cluster runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubcast-prom-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'prometheus.yml');
    writeFileSync(
      file,
      loopbackPrometheusConfig(read('deploy/prometheus/prometheus.yml'), {
        gateways: ['127.0.0.2:8080', '127.0.0.3:8080'],
        jobs: { haproxy: '127.0.0.1:8404', prometheus: '127.0.0.1:9090' },
        rulesDir: `${ROOT}deploy/prometheus`,
        interval: '1s',
      }),
    );
    ok('promtool', ['check', 'config', file]);
    const derived = parse(readFileSync(file, 'utf8')) as { rule_files: string[]; scrape_configs: { job_name: string }[] };
    assert.deepEqual(derived.rule_files, [`${ROOT}deploy/prometheus/alerts.yml`], 'the same rules file');
  });
  test('promtool check rules accepts alerts.yml', () => {
    ok('promtool', ['check', 'rules', 'deploy/prometheus/alerts.yml']);
  });
  test('promtool test rules: every alert fires and stays quiet in alerts.test.yml', () => {
    assert.match(ok('promtool', ['test', 'rules', 'deploy/prometheus/alerts.test.yml']), /SUCCESS/);
    const doc = parse(read('deploy/prometheus/alerts.test.yml')) as {
      tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const cases = doc.tests.flatMap((t) => t.alert_rule_test);
    for (const rule of alertRules()) {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      assert.ok(mine.some((c) => c.exp_alerts.length > 0), `${rule.alert} has a firing case`);
      assert.ok(mine.some((c) => c.exp_alerts.length === 0), `${rule.alert} has a quiet case`);
    }
  });
  test('each alert has a summary and a runbook section in docs/operations.md', () => {
    const ops = read('docs/operations.md');
    const anchors = new Set([...ops.matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.toLowerCase().replace(/[^a-z0-9 -]/g, '').replaceAll(' ', '-')));
    const required = ['HubcastHighDropRate', 'HubcastClientsEvicted', 'HubcastBusDisconnected', 'HubcastGatewayDown'];
    const names = alertRules().map((r) => r.alert);
    for (const name of required) assert.ok(names.includes(name), `${name} is defined`);
    for (const rule of alertRules()) {
      assert.ok(rule.annotations.summary, `${rule.alert} has a summary`);
      const anchor = /^docs\/operations\.md#(.+)$/.exec(rule.annotations.runbook ?? '')?.[1];
      assert.ok(anchor && anchors.has(anchor), `${rule.alert} runbook ${rule.annotations.runbook} is a heading in docs/operations.md`);
    }
  });
});

describe('deploy/grafana', () => {
  test('the dashboard reads the provisioned data source and has a gateway variable', () => {
    const ds = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string }[] };
    const uid = ds.datasources[0]!.uid;
    const json = read('deploy/grafana/dashboards/hubcast.json');
    const uids = new Set([...json.matchAll(/"uid": "([^"]+)"/g)].map((m) => m[1]));
    uids.delete('hubcast'); // the dashboard's own uid
    assert.deepEqual([...uids], [uid]);
    assert.ok(dashboard().templating.list.some((v) => v.name === 'gateway'));
    const provider = parse(read('deploy/grafana/provisioning/dashboards/hubcast.yml')) as { providers: { options: { path: string } }[] };
    assert.equal(provider.providers[0]!.options.path, '/var/lib/grafana/dashboards');
  });

  test('every dashboard panel is explained in the README', () => {
    const readme = read('README.md');
    const table = readme.slice(readme.indexOf('| Panel | What it shows |'));
    const explained = new Set([...table.matchAll(/^\| ([^|]+?) \|/gm)].map((m) => m[1]));
    for (const q of dashboardQueries()) assert.ok(explained.has(q.panel), `README explains panel "${q.panel}"`);
  });

  test('the dashboard has every panel the operators asked for', () => {
    const titles = dashboardQueries().map((q) => q.panel);
    for (const title of [
      'Drop rate by reason',
      'Drop rate by gateway',
      'Eviction rate by reason',
      'Eviction rate by gateway',
      'Open connections per gateway',
      'Publishes per second',
      'Deliveries per second',
      'Fan-out latency',
      'Queue depth',
      'Bus connection state',
      'Bus reconnects',
      'Gateways up',
    ]) {
      assert.ok(titles.includes(title), `panel ${title}`);
    }
  });
});

describe('metric names in the dashboard and alerts', () => {
  let gateway: GatewayProcess;
  before(async () => {
    gateway = await startGateway({});
  });
  after(() => gateway.kill('SIGKILL'));

  test('every one exists in a live gateway /metrics', async () => {
    const live = new Set([...(await gateway.metrics()).keys()].map((series) => series.replace(/\{.*$/, '')));
    const used = new Set([...dashboardQueries(), ...alertRules()].flatMap((q) => metricNames(q.expr)));
    used.delete('up'); // Prometheus's own, per target
    assert.ok(used.size >= 10, `found ${used.size} metric names`);
    for (const name of used) assert.ok(live.has(name), `${name} is not in /metrics`);
  });
});

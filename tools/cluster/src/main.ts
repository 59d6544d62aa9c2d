// `npm run cluster`: the docker-compose topology on this machine, without Docker.
//   npm run cluster                       3 gateways on 127.0.0.2-4
//   npm run cluster -- --gateways=5 --port 0
//   npm run cluster -- --redis-cluster     six redis-server processes as a Redis Cluster
//   ALLOWED_ORIGINS=https://example.com npm run cluster
// Every child's output is printed here, each line prefixed with its name ([gw1], [redis] ...).
import { CONFIG_VARIABLES } from '../../../services/gateway/src/config.js';
import { startCluster } from './cluster.js';
import { USAGE, gatewaySettings, parseClusterArgs } from './options.js';

const parsed = parseClusterArgs(process.argv.slice(2));
if (parsed.kind === 'help') {
  process.stdout.write(`${parsed.text}\n`);
  process.exit(0);
}
if (parsed.kind === 'error') {
  process.stderr.write(`cluster: ${parsed.message}\n${USAGE}\n`);
  process.exit(2);
}
const { args } = parsed;
const { settings, ignored } = gatewaySettings(process.env, CONFIG_VARIABLES);
const hosts = Array.from({ length: args.gateways }, (_, i) => `127.0.0.${i + 2}`);
const passed = Object.keys(settings);
process.stdout.write(`cluster: starting ${args.redisCluster ? 'a six-node Redis Cluster' : 'Redis'}, ${hosts.length} gateways, HAProxy and Prometheus...\n`);
if (passed.length > 0) process.stdout.write(`cluster: gateway settings from the environment: ${passed.join(', ')}\n`);
if (ignored.length > 0) process.stdout.write(`cluster: ignoring ${ignored.join(', ')} from the environment: the cluster sets these itself (see --help)\n`);
try {
  const cluster = await startCluster({
    gatewayHosts: hosts,
    gatewayPort: args.gatewayPort,
    lbPort: args.lbPort,
    statsPort: args.statsPort,
    prometheusPort: args.prometheusPort,
    redisPort: args.redisPort,
    redisCluster: args.redisCluster,
    gatewayEnv: settings,
    onLog: (name, line) => process.stdout.write(`[${name}] ${line}\n`),
  });
  const ws = cluster.lb.replace('http://', 'ws://');
  process.stdout.write(
    [
      '',
      `  WebSocket      ${ws}/ws?channels=news   (npm run listen -- --url ${ws} news)`,
      `  Publish        curl -XPOST ${cluster.lb}/publish -d '{"channel":"news","data":"hi"}'`,
      `  HAProxy stats  ${cluster.stats}/stats`,
      `  Prometheus     ${cluster.prometheus}  (alerts: ${cluster.prometheus}/alerts)`,
      `  Gateways       ${cluster.gateways.map((g) => `${g.proc.name} ${g.url}`).join('  ')}`,
      `  Redis          ${cluster.redisUrl}`,
      '',
      '  Grafana runs with docker compose only; the dashboard queries work in Prometheus as they are.',
      '  Logs follow, each line prefixed with its process. Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('cluster: stopping (gateways drain first)...\n');
    void cluster.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  for (const p of cluster.gateways) {
    void p.proc.exited.then((code) => {
      if (!stopping) process.stderr.write(`cluster: ${p.proc.name} exited (${code})\n`);
    });
  }
} catch (err) {
  process.stderr.write(`cluster: ${(err as Error).message}\n`);
  process.exit(1);
}

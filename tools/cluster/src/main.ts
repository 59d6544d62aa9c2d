// `npm run cluster`: the docker-compose topology on this machine, without Docker.
//   npm run cluster                 3 gateways on 127.0.0.2-4
//   npm run cluster -- --gateways 5
import { startCluster } from './cluster.js';

function gatewayCount(argv: readonly string[]): number {
  const at = argv.indexOf('--gateways');
  if (at < 0) return 3;
  const n = Number(argv[at + 1]);
  if (!Number.isInteger(n) || n < 1 || n > 32) {
    process.stderr.write('cluster: --gateways must be an integer from 1 to 32\n');
    process.exit(2);
  }
  return n;
}

const hosts = Array.from({ length: gatewayCount(process.argv.slice(2)) }, (_, i) => `127.0.0.${i + 2}`);
process.stdout.write(`cluster: starting Redis, ${hosts.length} gateways, HAProxy and Prometheus...\n`);
try {
  const cluster = await startCluster({
    gatewayHosts: hosts,
    gatewayPort: 8080,
    lbPort: 8080,
    statsPort: 8404,
    prometheusPort: 9090,
    redisPort: 6390,
  });
  const ws = cluster.lb.replace('http://', 'ws://');
  process.stdout.write(
    [
      '',
      `  WebSocket      ${ws}/ws?channels=news`,
      `  Publish        curl -XPOST ${cluster.lb}/publish -d '{"channel":"news","data":"hi"}'`,
      `  HAProxy stats  ${cluster.stats}/stats`,
      `  Prometheus     ${cluster.prometheus}  (alerts: ${cluster.prometheus}/alerts)`,
      `  Gateways       ${cluster.gateways.map((g) => g.url).join('  ')}`,
      `  Redis          ${cluster.redisUrl}`,
      '',
      '  Grafana runs with docker compose only; the dashboard queries work in Prometheus as they are.',
      '  Ctrl-C stops everything.',
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

// The compose topology as local processes: Redis (or a six-node Redis Cluster), gateways on distinct loopback addresses
// sharing one port, HAProxy from deploy/haproxy/haproxy.cfg finding them through a loopback
// DNS server, and Prometheus from deploy/prometheus/ scraping them with the same rules.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAIN as GATEWAY_MAIN } from '../../kit/src/gateway.js';
import { freePortOn, requireFree } from '../../kit/src/ports.js';
import { type Proc, requireProgram, startProc, waitFor } from '../../kit/src/process.js';
import { startRedisServer } from '../../kit/src/redis.js';
import { type RedisCluster, startRedisCluster } from '../../kit/src/redis-cluster.js';
import { httpStatus } from '../../kit/src/wait.js';
import { type DnsServer, startDnsServer } from './dns.js';
import { loopbackPrometheusConfig } from './prometheus.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const HAPROXY_CFG = join(ROOT, 'deploy/haproxy/haproxy.cfg');
export const PROMETHEUS_DIR = join(ROOT, 'deploy/prometheus');
/** The name the gateways answer to, as the compose service is called. */
const GATEWAY_NAME = 'gateway';

export interface ClusterOptions {
  /** One gateway per address (default 127.0.0.2, .3, .4). */
  readonly gatewayHosts?: readonly string[];
  /** 0 picks ports that are free (tests); otherwise fixed ports, checked free. */
  readonly gatewayPort?: number;
  readonly lbPort?: number;
  readonly statsPort?: number;
  readonly prometheusPort?: number;
  readonly redisPort?: number;
  /** A six-node Redis Cluster on free ports instead of one Redis (redisPort is then unused). */
  readonly redisCluster?: boolean;
  /** Extra gateway settings (DRAIN_MS, queue bounds...). */
  readonly gatewayEnv?: Readonly<Record<string, string>>;
  /** Scrape and evaluation interval override, e.g. "1s" for tests. */
  readonly scrapeInterval?: string;
  /** Each line a child prints, with its name: redis, gw1, gw2..., haproxy, prometheus. */
  readonly onLog?: (name: string, line: string) => void;
}

export interface ClusterGateway {
  readonly host: string;
  /** http://host:port */
  readonly url: string;
  readonly proc: Proc;
}

export interface Cluster {
  /** Where the gateways' bus is: REDIS_URL, or with a Redis Cluster its REDIS_CLUSTER_NODES. */
  readonly redisUrl: string;
  readonly gateways: readonly ClusterGateway[];
  /** http://127.0.0.1:port of HAProxy: /ws and /publish go here. */
  readonly lb: string;
  readonly stats: string;
  readonly prometheus: string;
  readonly dns: DnsServer;
  /** HAProxy's view of the gateway backend (servers with an address only). */
  lbServers(): Promise<LbServer[]>;
  /**
   * A rolling restart's step: SIGTERMs gateway i (it drains), waits for its exit, starts a
   * replacement with the same settings on the same address (into `gateways[i]`), and resolves
   * with the old one's exit code once the new one answers /readyz 200.
   */
  restartGateway(i: number): Promise<number | string>;
  stop(): Promise<void>;
}

const LB_HOST = '127.0.0.1';

export interface LbServer {
  readonly name: string;
  /** host:port the server-template slot resolved to. */
  readonly addr: string;
  /** UP, DOWN, ... as HAProxy reports it. */
  readonly status: string;
  /** Sessions open to it now. */
  readonly sessions: number;
}

/** HAProxy's CSV stats (at `stats`, its stats URL) for backend "gateways", without the unfilled server-template slots. */
export async function readLbServers(stats: string): Promise<LbServer[]> {
  const res = await fetch(`${stats}/stats;csv`, { signal: AbortSignal.timeout(2000) });
  const [header, ...rows] = (await res.text()).split('\n');
  const cols = header!.replace(/^# /, '').split(',');
  const at = (name: string): number => cols.indexOf(name);
  const out: LbServer[] = [];
  for (const row of rows) {
    const f = row.split(',');
    if (f[at('pxname')] !== 'gateways' || f[at('svname')] === 'BACKEND' || f[at('svname')] === undefined) continue;
    const addr = f[at('addr')] ?? '';
    if (addr === '' || addr.startsWith('-')) continue;
    out.push({ name: f[at('svname')]!, addr, status: f[at('status')] ?? '', sessions: Number(f[at('scur')]) });
  }
  return out;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  requireProgram('redis-server');
  requireProgram('haproxy');
  requireProgram('prometheus');
  const hosts = options.gatewayHosts ?? ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const work = await mkdtemp(join(tmpdir(), 'hubcast-cluster-'));
  // Stopped in layers: load balancer first, then Prometheus, then the gateways together (each
  // drains DRAIN_MS), then Redis, which they depend on.
  const layers: Proc[][] = [[], [], [], []];
  const [lbLayer, promLayer, gatewayLayer, redisLayer] = layers as [Proc[], Proc[], Proc[], Proc[]];
  const { onLog } = options;
  const linesOf = (name: string) => onLog && ((line: string) => onLog(name, line));
  const start = (layer: Proc[], name: string, command: string, args: readonly string[], env: Record<string, string> = {}): Proc => {
    const proc = startProc(name, command, args, { env, onLine: linesOf(name) });
    layer.push(proc);
    return proc;
  };
  let dns: DnsServer | undefined;
  let redisCluster: RedisCluster | undefined;
  const stop = async (): Promise<void> => {
    for (const layer of layers) await Promise.all(layer.map((p) => p.stop('SIGTERM', 15_000)));
    await redisCluster?.stop(); // after the gateways, like the single Redis's layer
    await dns?.close();
    await rm(work, { recursive: true, force: true });
  };
  try {
    let redisUrl: string;
    let bus: Record<string, string>;
    if (options.redisCluster === true) {
      redisCluster = await startRedisCluster();
      redisUrl = `Redis Cluster ${redisCluster.seedList}`;
      bus = { REDIS_CLUSTER_NODES: redisCluster.seedList };
    } else {
      const redisPort = await requireFree([LB_HOST], options.redisPort ?? 0, 'redis');
      redisLayer.push(await startRedisServer({ host: LB_HOST, port: redisPort, onLine: linesOf('redis') }));
      redisUrl = `redis://${LB_HOST}:${redisPort}`;
      bus = { REDIS_URL: redisUrl };
    }

    const gatewayPort = options.gatewayPort ? await requireFree(hosts, options.gatewayPort, 'gateway') : await freePortOn(hosts);
    const startGateway = (i: number): ClusterGateway => {
      const host = hosts[i]!;
      const env = { LOG_LEVEL: 'info', ...options.gatewayEnv, HOST: host, PORT: String(gatewayPort), ...bus };
      const proc = start(gatewayLayer, `gw${i + 1}`, process.execPath, [GATEWAY_MAIN], env);
      return { host, url: `http://${host}:${gatewayPort}`, proc };
    };
    const ready = (g: ClusterGateway): Promise<void> => waitFor(g.proc, '/readyz 200', async () => (await httpStatus(`${g.url}/readyz`)) === 200);
    const gateways = hosts.map((_, i) => startGateway(i));
    for (const g of gateways) await ready(g);
    const restartGateway = async (i: number): Promise<number | string> => {
      const old = gateways[i];
      if (old === undefined) throw new Error(`no gateway ${i}: the cluster has ${gateways.length}`);
      const code = await old.proc.stop('SIGTERM', 30_000);
      gateways[i] = startGateway(i);
      await ready(gateways[i]!);
      return code;
    };

    dns = await startDnsServer(LB_HOST, { [GATEWAY_NAME]: hosts });
    const lbPort = await requireFree([LB_HOST], options.lbPort ?? 0, 'load balancer');
    const statsPort = await requireFree([LB_HOST], options.statsPort ?? 0, 'load balancer stats');
    // Only addresses go in: the file itself is deploy/haproxy/haproxy.cfg.
    const haproxy = start(lbLayer, 'haproxy', 'haproxy', ['-db', '-f', HAPROXY_CFG], {
      LB_BIND: `${LB_HOST}:${lbPort}`,
      LB_STATS_BIND: `${LB_HOST}:${statsPort}`,
      DNS_SERVER: dns.address,
      GATEWAY_HOST: GATEWAY_NAME,
      GATEWAY_PORT: String(gatewayPort),
    });
    const stats = `http://${LB_HOST}:${statsPort}`;
    const lbServers = () => readLbServers(stats);
    await waitFor(haproxy, `all ${hosts.length} gateways UP`, async () => {
      const servers = await lbServers();
      return servers.filter((s) => s.status === 'UP').length === hosts.length;
    });

    const promPort = await requireFree([LB_HOST], options.prometheusPort ?? 0, 'prometheus');
    const promConfig = join(work, 'prometheus.yml');
    await writeFile(
      promConfig,
      loopbackPrometheusConfig(await readFile(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8'), {
        gateways: hosts.map((h) => `${h}:${gatewayPort}`),
        jobs: { haproxy: `${LB_HOST}:${statsPort}`, prometheus: `${LB_HOST}:${promPort}` },
        rulesDir: PROMETHEUS_DIR,
        interval: options.scrapeInterval,
      }),
    );
    const prometheus = start(promLayer, 'prometheus', 'prometheus', [
      `--config.file=${promConfig}`,
      `--storage.tsdb.path=${join(work, 'data')}`,
      `--web.listen-address=${LB_HOST}:${promPort}`,
      '--log.level=warn',
    ]);
    const promUrl = `http://${LB_HOST}:${promPort}`;
    await waitFor(prometheus, 'ready', async () => (await httpStatus(`${promUrl}/-/ready`)) === 200, 30_000);

    return { redisUrl, gateways, lb: `http://${LB_HOST}:${lbPort}`, stats, prometheus: promUrl, dns, lbServers, restartGateway, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

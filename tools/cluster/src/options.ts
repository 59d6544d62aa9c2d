// What `npm run cluster` is asked for: its flags, checked, and the gateway settings it passes on
// from its own environment. Pure: main.ts does the printing and the exiting.
import { parseFlags } from '../../kit/src/flags.js';

export const USAGE =
  'usage: npm run cluster -- [--gateways N] [--redis-cluster] [--port P] [--stats-port P] [--prometheus-port P] [--redis-port P] [--gateway-port P] [--help]';

/** Each flag, its default and what it sets; 0 as a port picks a free one. */
const PORT_FLAGS = {
  port: { fallback: 8080, what: 'HAProxy, the WebSocket and publish entry' },
  'stats-port': { fallback: 8404, what: 'HAProxy stats' },
  'prometheus-port': { fallback: 9090, what: 'Prometheus' },
  'redis-port': { fallback: 6390, what: 'Redis' },
  'gateway-port': { fallback: 8080, what: 'every gateway, each on its own address' },
} as const;
type PortFlag = keyof typeof PORT_FLAGS;

const MAX_GATEWAYS = 32;

export interface ClusterArgs {
  readonly gateways: number;
  readonly lbPort: number;
  readonly statsPort: number;
  readonly prometheusPort: number;
  readonly redisPort: number;
  readonly gatewayPort: number;
  /** Six redis-server processes as a Redis Cluster (3 masters, 3 replicas) instead of one Redis. */
  readonly redisCluster: boolean;
}

export type ParsedArgs =
  | { readonly kind: 'run'; readonly args: ClusterArgs }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'error'; readonly message: string };

export function helpText(): string {
  const row = (flag: string, text: string): string => `  ${flag.padEnd(22)}${text}`;
  const lines = [
    USAGE,
    '',
    row('--gateways N', `gateways on 127.0.0.2, .3, ... (1 to ${MAX_GATEWAYS}, default 3)`),
    row('--redis-cluster', 'a six-node Redis Cluster (3 masters, 3 replicas, free ports) instead of one Redis; gateways get REDIS_CLUSTER_NODES'),
  ];
  for (const [flag, { fallback, what }] of Object.entries(PORT_FLAGS)) {
    lines.push(row(`--${flag} P`, `${what} (default ${fallback}; 0 picks a free port)`));
  }
  lines.push(
    '',
    `Gateway settings in the environment (ALLOWED_ORIGINS=... npm run cluster) reach every gateway, except ${CLUSTER_SET.join(', ')}:`,
    'the cluster sets those itself.',
  );
  return lines.join('\n');
}

function integer(value: string | true | undefined, fallback: number, min: number, max: number): number | null {
  if (value === undefined) return fallback;
  if (value === true || !/^\d+$/.test(value)) return null;
  const n = Number(value);
  return n >= min && n <= max ? n : null;
}

export function parseClusterArgs(argv: readonly string[]): ParsedArgs {
  const spec = { gateways: 'string', help: 'boolean', 'redis-cluster': 'boolean', ...Object.fromEntries(Object.keys(PORT_FLAGS).map((f) => [f, 'string'])) } as const;
  const parsed = parseFlags(argv, spec);
  if (!parsed.ok) return { kind: 'error', message: parsed.error };
  const { values, positional } = parsed.flags;
  if (values.has('help')) return { kind: 'help', text: helpText() };
  if (positional.length > 0) return { kind: 'error', message: `unexpected argument ${positional[0]}` };
  const gateways = integer(values.get('gateways'), 3, 1, MAX_GATEWAYS);
  if (gateways === null) return { kind: 'error', message: `--gateways must be an integer from 1 to ${MAX_GATEWAYS}` };
  const ports = {} as Record<PortFlag, number>;
  for (const [flag, { fallback }] of Object.entries(PORT_FLAGS) as [PortFlag, { fallback: number }][]) {
    const port = integer(values.get(flag), fallback, 0, 65_535);
    if (port === null) return { kind: 'error', message: `--${flag} must be a port from 0 to 65535` };
    ports[flag] = port;
  }
  return {
    kind: 'run',
    args: {
      gateways,
      lbPort: ports.port,
      statsPort: ports['stats-port'],
      prometheusPort: ports['prometheus-port'],
      redisPort: ports['redis-port'],
      gatewayPort: ports['gateway-port'],
      redisCluster: values.has('redis-cluster'),
    },
  };
}

/** Settings the cluster chooses for each gateway itself; the same names in the environment are ignored. */
export const CLUSTER_SET = ['HOST', 'PORT', 'REDIS_URL', 'REDIS_CLUSTER_NODES'] as const;

/**
 * The gateway settings present in env, for every gateway: each of `variables` (the gateway's
 * own list) that is set, except those the cluster sets, which come back as `ignored`.
 */
export function gatewaySettings(
  env: Readonly<Record<string, string | undefined>>,
  variables: readonly string[],
): { readonly settings: Record<string, string>; readonly ignored: string[] } {
  const settings: Record<string, string> = {};
  const ignored: string[] = [];
  for (const name of variables) {
    const value = env[name];
    if (value === undefined) continue;
    if ((CLUSTER_SET as readonly string[]).includes(name)) ignored.push(name);
    else settings[name] = value;
  }
  return { settings, ignored };
}

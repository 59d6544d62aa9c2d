// Gateways as real processes on ephemeral ports, exactly as `npm start` runs them. The kit names
// the gateway's entry file only; it imports nothing from it.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseMetrics } from './metrics.js';
import { startProc } from './process.js';
import { waitUntil, within } from './wait.js';

export const MAIN = fileURLToPath(new URL('../../../services/gateway/src/main.js', import.meta.url));

export interface GatewayProcess {
  readonly port: number;
  readonly http: string;
  readonly proc: ChildProcess;
  /** Every JSON log line so far. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  ws(channels?: readonly string[]): string;
  readyz(): Promise<number>;
  waitReady(expected?: number, timeoutMs?: number): Promise<void>;
  /** The /metrics exposition, parsed to `name{labels}` → value. */
  metrics(): Promise<Map<string, number>>;
  metric(series: string): Promise<number>;
  /** Sends signal (SIGKILL) and resolves on exit. */
  kill(signal?: NodeJS.Signals): Promise<number | string>;
  /** Sends signal (SIGTERM) and resolves on exit; SIGKILL after graceMs. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

/**
 * Starts a gateway with these settings (on port 0, quiet logs unless given). `script` runs another
 * server that logs the same JSON `listening` line (the benchmark's peer and ceiling servers);
 * `nodeArgs` go to node itself (--cpu-prof, which NODE_OPTIONS does not allow).
 */
export async function startGateway(
  env: Record<string, string>,
  timeoutMs = 15_000,
  script = MAIN,
  nodeArgs: readonly string[] = [],
): Promise<GatewayProcess> {
  const logs: Record<string, unknown>[] = [];
  let onListening: (port: number) => void = () => undefined;
  const listening = new Promise<number>((resolve) => (onListening = resolve));
  const p = startProc('gateway', process.execPath, [...nodeArgs, script], {
    env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    onLine: (line) => {
      if (!line.startsWith('{')) return; // stderr text, kept in the tail only
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'listening') onListening(entry.port as number);
      } catch {
        // not a log line
      }
    },
  });
  const gone = p.exited.then((code) => {
    throw new Error(`gateway exited (${code}) before listening: ${p.tail().trim()}`);
  });
  gone.catch(() => undefined); // raced below; after listening, an exit is the test's business
  let port: number;
  try {
    port = await within(Promise.race([listening, gone]), timeoutMs, 'the gateway to listen');
  } catch (err) {
    p.child.kill('SIGKILL');
    throw err;
  }
  const http = `http://127.0.0.1:${port}`;
  const gateway: GatewayProcess = {
    port,
    http,
    proc: p.child,
    logs,
    exited: p.exited,
    ws: (channels) => `ws://127.0.0.1:${port}/ws${channels && channels.length > 0 ? `?channels=${channels.join(',')}` : ''}`,
    readyz: async () => (await fetch(`${http}/readyz`)).status,
    waitReady: (expected = 200, ms = 10_000) =>
      waitUntil(async () => (await gateway.readyz().catch(() => 0)) === expected, {
        timeoutMs: ms,
        what: `/readyz on port ${port} to answer ${expected}`,
      }),
    metrics: async () => parseMetrics(await (await fetch(`${http}/metrics`)).text()),
    metric: async (series) => (await gateway.metrics()).get(series) ?? Number.NaN,
    kill: async (signal = 'SIGKILL') => {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
      return p.exited;
    },
    stop: (signal, graceMs) => p.stop(signal, graceMs),
  };
  return gateway;
}

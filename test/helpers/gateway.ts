// Gateways as real processes on ephemeral ports, exactly as `npm start` runs them.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { within, waitUntil } from './wait.js';

export const MAIN = fileURLToPath(new URL('../../services/gateway/src/main.js', import.meta.url));

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
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
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
  const proc = spawn(process.execPath, [...nodeArgs, script], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  const exited = once(proc, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  const listening = new Promise<number>((resolve, reject) => {
    let buffered = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === 'listening') resolve(entry.port as number);
        } catch {
          // not a log line
        }
      }
    });
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    void exited.then((code) => reject(new Error(`gateway exited (${code}) before listening: ${stderr.trim()}`)));
  });
  let port: number;
  try {
    port = await within(listening, timeoutMs, 'the gateway to listen');
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  const http = `http://127.0.0.1:${port}`;
  const gateway: GatewayProcess = {
    port,
    http,
    proc,
    logs,
    exited,
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
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  return gateway;
}

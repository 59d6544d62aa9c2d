// Child processes of a loopback cluster: started, watched, and stopped within a deadline.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Exit code, or the signal's name. */
  readonly exited: Promise<number | string>;
  /** The last lines it printed (stdout and stderr), for error messages. */
  tail(): string;
  /** Sends signal (SIGTERM) and waits; SIGKILL after graceMs. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

const TAIL_LINES = 40;

// Detached children outlive us unless killed: whatever is still running when we exit goes too.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Throws one line naming the Debian package when a program is missing. */
export function requireProgram(program: string, debianPackage = program): void {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`${program} not found: install it with apt-get install -y ${debianPackage}`);
  }
}

export function startProc(
  name: string,
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  onLine?: (line: string) => void,
): Proc {
  // Own process group: a terminal's Ctrl-C reaches only the cluster, which then stops each child
  // in order (a gateway given SIGINT and then SIGTERM would skip its drain).
  const child = spawn(command, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const lines: string[] = [];
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  // spawn errors (ENOENT) arrive as 'error' and then no 'exit'.
  const failed = once(child, 'error').then(([err]) => `spawn failed: ${(err as Error).message}`);
  const ended = Promise.race([exited, failed]);
  for (const stream of [child.stdout!, child.stderr!]) {
    let buffered = '';
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        if (lines.length > TAIL_LINES) lines.shift();
        onLine?.(line);
      }
    });
  }
  return {
    name,
    child,
    exited: ended,
    tail: () => lines.join('\n'),
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return ended;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await ended;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Polls check() until it holds; fails early, with the process's output, if it exits. */
export async function waitFor(proc: Proc, what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  let gone: number | string | undefined;
  void proc.exited.then((code) => (gone = code));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone !== undefined) throw new Error(`${proc.name} exited (${gone}) before ${what}:\n${proc.tail()}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${proc.name}: timed out after ${timeoutMs} ms waiting for ${what}:\n${proc.tail()}`);
    await sleep(100);
  }
}

export async function httpStatus(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status;
}

function canListen(host: string, port: number): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(-1));
    server.listen(port, host, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : -1;
      server.close(() => resolve(bound));
    });
  });
}

/** A port free on every host: the one port all gateway replicas share, as in compose. */
export async function freePortOn(hosts: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await canListen(hosts[0]!, 0);
    if (port < 0) break;
    let free = true;
    for (const host of hosts.slice(1)) if ((await canListen(host, port)) < 0) free = false;
    if (free) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

/** Fails with one line when a fixed port is taken. */
export async function requireFree(host: string, port: number, what: string): Promise<number> {
  if (port === 0) return freePortOn([host]);
  if ((await canListen(host, port)) < 0) throw new Error(`${what}: ${host}:${port} is in use`);
  return port;
}

// Child processes for tools and tests: started in their own process group, read as lines,
// stopped by PID within a bound.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Exit code, or the signal's name (or why the spawn failed). */
  readonly exited: Promise<number | string>;
  /** The last lines it printed (stdout and stderr), for error messages. */
  tail(): string;
  /** The first line (from now, or still in the tail) that matches; rejects with the tail if the process exits first. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends signal (SIGTERM) to its PID and waits; SIGKILL after graceMs. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

export interface ProcOptions {
  /** The child's whole environment besides PATH (nothing else is inherited, so runs repeat). */
  readonly env?: Readonly<Record<string, string>>;
  /** Each line of stdout and stderr, as it arrives. */
  readonly onLine?: (line: string) => void;
}

const TAIL_LINES = 40;

// Children in their own group outlive us unless killed: whatever still runs when we exit goes too.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Throws one line naming the Debian package when a program is missing. */
export function requireProgram(program: string, debianPackage = program): void {
  if (!hasProgram(program)) throw new Error(`${program} not found: install it with apt-get install -y ${debianPackage}`);
}

export function hasProgram(program: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function startProc(name: string, command: string, args: readonly string[], options: ProcOptions = {}): Proc {
  // Own process group: a terminal's Ctrl-C reaches only the parent, which then stops each child
  // in order (a gateway given SIGINT and then SIGTERM would skip its drain).
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  // A spawn error (ENOENT) arrives as 'error' and then no 'exit' (and events.once('exit') would reject on it).
  const ended = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve((code ?? signal) as number | string));
    // Later errors (a failed kill) leave the process running: not an end.
    child.on('error', (err) => {
      if (child.pid === undefined) resolve(`spawn failed: ${err.message}`);
    });
  });
  void ended.then(() => live.delete(child));

  const lines: string[] = [];
  const waiters = new Set<(line: string) => void>();
  const take = (line: string): void => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
    options.onLine?.(line);
    for (const w of waiters) w(line);
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        take(line);
      }
    });
    stream.on('end', () => {
      if (buffered !== '') take(buffered);
      buffered = '';
    });
  }
  const tail = (): string => lines.join('\n');

  return {
    name,
    child,
    pid: child.pid ?? -1,
    exited: ended,
    tail,
    waitForLine(pattern, timeoutMs = 15_000) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(onLine);
        };
        const onLine = (line: string): void => {
          if (!pattern.test(line)) return;
          done();
          resolve(line);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: timed out after ${timeoutMs} ms waiting for a line matching ${pattern}:\n${tail()}`));
        }, timeoutMs);
        waiters.add(onLine);
        void ended.then((code) => {
          if (!waiters.has(onLine)) return;
          done();
          reject(new Error(`${name} exited (${code}) before printing a line matching ${pattern}:\n${tail()}`));
        });
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return ended;
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

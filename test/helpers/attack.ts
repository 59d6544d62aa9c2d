// Runs a hostile client (attacker.ts) in a child process and collects its figures.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Attack } from './attacker.js';
import { within } from './wait.js';

const SCRIPT = fileURLToPath(new URL('./attacker.js', import.meta.url));

export interface RunningAttack {
  /** The attacker's figures, once it has finished. */
  readonly result: Promise<Record<string, number>>;
  kill(): void;
}

export function runAttack(attack: Attack, timeoutMs = 60_000): RunningAttack {
  const proc = spawn(process.execPath, [SCRIPT, JSON.stringify(attack)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  const result = within(once(proc, 'exit'), timeoutMs, `the ${attack.mode} attacker to finish`).then(([code]) => {
    if (code !== 0) throw new Error(`${attack.mode} attacker exited ${String(code)}`);
    return JSON.parse(out.trim()) as Record<string, number>;
  });
  const kill = (): void => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  result.catch(kill);
  return { result, kill };
}

// Runs a hostile client (attacker.ts) in a child process and collects its figures.
import { fileURLToPath } from 'node:url';
import { startProc } from '../../tools/kit/src/process.js';
import type { Attack } from './attacker.js';
import { within } from './wait.js';

const SCRIPT = fileURLToPath(new URL('./attacker.js', import.meta.url));

export interface RunningAttack {
  /** The attacker's figures, once it has finished. */
  readonly result: Promise<Record<string, number>>;
  kill(): void;
}

export function runAttack(attack: Attack, timeoutMs = 60_000): RunningAttack {
  const proc = startProc(`${attack.mode} attacker`, process.execPath, [SCRIPT, JSON.stringify(attack)]);
  const result = within(proc.exited, timeoutMs, `the ${attack.mode} attacker to finish`).then((code) => {
    if (code !== 0) throw new Error(`${attack.mode} attacker exited ${String(code)}:\n${proc.tail()}`);
    // Its figures are its one JSON line on stdout (stderr lines, if any, are not JSON objects).
    const line = proc.tail().split('\n').reverse().find((l) => l.startsWith('{'));
    if (line === undefined) throw new Error(`${attack.mode} attacker printed no figures:\n${proc.tail()}`);
    return JSON.parse(line) as Record<string, number>;
  });
  const kill = (): void => {
    void proc.stop('SIGKILL');
  };
  result.catch(kill);
  return { result, kill };
}

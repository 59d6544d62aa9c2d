// The kit's child processes (tools/kit/src/process.ts): read as lines from both streams, waited on
// by line, in their own process group, stopped by PID with SIGKILL after the bound.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { startProc } from '../../tools/kit/src/process.js';

const node = (script: string, onLine?: (line: string) => void) =>
  startProc('child', process.execPath, ['-e', script], { onLine, env: { MARK: 'from-env' } });

describe('kit: processes', () => {
  test('stdout and stderr arrive as lines, the last one without a newline too; the env is the one given', async (t) => {
    const lines: string[] = [];
    const p = node("process.stdout.write('a\\nb'); process.stderr.write('c\\n'); setTimeout(() => process.stdout.write('\\n' + process.env.MARK), 20)", (l) => lines.push(l));
    t.after(() => p.stop('SIGKILL'));
    assert.equal(await p.exited, 0);
    assert.deepEqual(lines.sort(), ['a', 'b', 'c', 'from-env']);
    assert.deepEqual(p.tail().split('\n').sort(), ['a', 'b', 'c', 'from-env']);
  });

  test('waitForLine resolves with the matching line, also one printed before the wait began', async (t) => {
    const p = node("console.log('first'); console.log('ready on 42'); setInterval(() => {}, 1000)");
    t.after(() => p.stop('SIGKILL'));
    assert.equal(await p.waitForLine(/^ready on \d+$/, 10_000), 'ready on 42');
    assert.equal(await p.waitForLine(/^first$/, 10_000), 'first');
  });

  test('waitForLine rejects with the output when the process exits first', async () => {
    const p = node("console.error('cannot start: port in use'); process.exit(3)");
    await assert.rejects(p.waitForLine(/ready/, 10_000), /child exited \(3\) before printing a line matching \/ready\/:\ncannot start: port in use/);
  });

  test('the child leads its own process group (a Ctrl-C to the parent does not reach it)', async (t) => {
    const p = node('setInterval(() => {}, 1000)');
    t.after(() => p.stop('SIGKILL'));
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    assert.equal(pgrp, p.pid);
  });

  test('stop sends SIGTERM, and SIGKILL once the bound passes for a child that ignores it', async () => {
    const polite = node("process.on('SIGTERM', () => process.exit(7)); console.log('up'); setInterval(() => {}, 1000)");
    await polite.waitForLine(/^up$/, 10_000);
    assert.equal(await polite.stop('SIGTERM', 10_000), 7);
    const stubborn = node("process.on('SIGTERM', () => console.log('ignored')); console.log('up'); setInterval(() => {}, 1000)");
    await stubborn.waitForLine(/^up$/, 10_000);
    assert.equal(await stubborn.stop('SIGTERM', 200), 'SIGKILL');
    assert.match(stubborn.tail(), /ignored/);
  });

  test('a program that does not exist fails its spawn, and stop() returns at once', async () => {
    const p = startProc('missing', '/nonexistent/program', []);
    assert.match(String(await p.exited), /spawn failed: spawn \/nonexistent\/program ENOENT/);
    assert.match(String(await p.stop()), /spawn failed/);
  });
});

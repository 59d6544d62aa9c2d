// Micro-benchmark of the publish path's JSON work (issue 13): one WebSocket publish frame to the
// bytes that go on the bus. "re-encode" is the path before splicing: decode the frame, JSON.parse
// and validate it (parseCommand), then JSON.stringify the parsed data into the message and encode
// it to a Buffer. "splice" parses and validates the same way, then finds the raw bytes of `data`
// in the frame (json-span.ts) and copies them into the message. Same functions the gateway runs.
//
//   node dist/tools/loadgen/src/json-splice.js [--ms=600]
//
// Prints CPU ns per publish (the fastest of 15 alternating rounds) for each payload, ASCII and non-ASCII.
import assert from 'node:assert/strict';
import { availableParallelism, loadavg } from 'node:os';
import { isProtocolError, parseCommand, tryEncodeMessage } from '../../../services/gateway/src/protocol.js';

const ROUNDS = 15;
const ms = Number(process.argv.find((a) => a.startsWith('--ms='))?.slice(5) ?? 600);

/** A chat-like record of about `size` bytes of JSON, its text ASCII or not. */
function record(i: number, text: string): Record<string, unknown> {
  return { id: i, user: `user-${i}`, ts: 1_733_100_000_000 + i, text, tags: ['a', 'b'] };
}

function fill(unit: string, bytes: number): string {
  let s = '';
  while (Buffer.byteLength(s) < bytes) s += unit;
  return s;
}

function nested(depth: number, text: string): unknown {
  let v: unknown = { leaf: text, n: [1, 2.5, -3e-7, true, null] };
  for (let d = 0; d < depth; d++) v = { level: d, child: v, list: [{ k: `v${d}` }, [d, d + 1]] };
  return v;
}

function cases(ascii: boolean): [string, unknown][] {
  const unit = ascii ? 'lorem ipsum ' : 'héllo мир 世界 😀 ';
  return [
    ['string ~16 B', fill(unit, 14)],
    ['string 64 B (the bench payload)', fill(unit, 64)],
    ['object ~100 B', record(1, fill(unit, 40))],
    ['string 1 KB', fill(unit, 1000)],
    ['object 1 KB', Array.from({ length: 8 }, (_, i) => record(i, fill(unit, 60)))],
    ['string 16 KB', fill(unit, 16_000)],
    ['object 16 KB', Array.from({ length: 130 }, (_, i) => record(i, fill(unit, 60)))],
    ['nested 12 deep', nested(12, fill(unit, 20))],
  ];
}

function reencode(frame: Buffer): Buffer {
  const command = parseCommand(frame.toString('utf8'));
  if (isProtocolError(command) || command.op !== 'publish') throw new Error('not a publish');
  const out = tryEncodeMessage(command.channel, command.data);
  if (isProtocolError(out)) throw new Error(out.message);
  return out;
}

function splice(frame: Buffer): Buffer {
  const command = parseCommand(frame);
  if (isProtocolError(command) || command.op !== 'publish') throw new Error('not a publish');
  const out = tryEncodeMessage(command.channel, command.data, command.raw);
  if (isProtocolError(out)) throw new Error(out.message);
  return out;
}

/** Calls per round so that one round of fn takes about `ms` / ROUNDS. */
function calibrate(fn: (frame: Buffer) => Buffer, frame: Buffer): number {
  let n = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < n; i++) fn(frame);
    if (performance.now() - start > ms / ROUNDS) return n;
    n *= 2;
  }
}

/** CPU ns per call (this process's user + system time, so time spent descheduled does not count). */
function round(fn: (frame: Buffer) => Buffer, frame: Buffer, n: number): number {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(frame);
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / n;
}

/**
 * CPU ns per call of each path: rounds alternate between the two, and each keeps its fastest
 * round, so what load from other processes on a shared machine adds (cache misses, migrations) cancels out.
 */
function compare(frame: Buffer): [number, number] {
  const n = Math.min(calibrate(reencode, frame), calibrate(splice, frame));
  let before = Infinity;
  let after = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    before = Math.min(before, round(reencode, frame, n));
    after = Math.min(after, round(splice, frame, n));
  }
  return [before, after];
}

const print = (line: string): boolean => process.stdout.write(`${line}\n`);
print(`node ${process.version}, ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; CPU ns per publish, the fastest of ${ROUNDS} alternating rounds`);
print('| data | frame bytes | re-encode (ns) | splice (ns) | splice / re-encode |');
print('|---|---|---|---|---|');
for (const ascii of [true, false]) {
  for (const [name, data] of cases(ascii)) {
    // As the SDK sends it: data, then id.
    const frame = Buffer.from(JSON.stringify({ op: 'publish', channel: 'room.42', data, id: 7 }));
    // Both paths must produce messages that parse to the same value.
    assert.deepEqual(JSON.parse(splice(frame).toString('utf8')), JSON.parse(reencode(frame).toString('utf8')));
    assert.ok(parseCommand(frame) && !isProtocolError(parseCommand(frame)) && (parseCommand(frame) as { raw?: unknown }).raw !== undefined, 'spliced');
    const [before, after] = compare(frame);
    const label = `${name}, ${ascii ? 'ASCII' : 'non-ASCII'}`;
    print(`| ${label} | ${frame.length} | ${before.toFixed(0)} | ${after.toFixed(0)} | ${(after / before).toFixed(2)} |`);
  }
}

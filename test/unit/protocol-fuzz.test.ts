// Property tests (fast-check, seeded) over the pure parsers: they never throw, every refusal
// carries a documented error code, and valid commands round-trip exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ChannelPatterns } from '../../services/gateway/src/auth.js';
import { ErrorCode } from '../../services/gateway/src/codes.js';
import { MemberSpan } from '../../services/gateway/src/json-span.js';
import {
  MAX_DATA_DEPTH,
  encodeMessage,
  isProtocolError,
  isValidChannel,
  parseChannelsQuery,
  parseCommand,
  parsePublishBody,
  tryEncodeMessage,
} from '../../services/gateway/src/protocol.js';
import { mulberry32 } from '../helpers/random.js';

const SEED = 20251126;
const CODES = new Set<string>(Object.values(ErrorCode));
const channel = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,128}$/);
const id = fc.oneof(fc.maxSafeInteger(), fc.string({ maxLength: 64 }));
const op = fc.constantFrom('subscribe', 'unsubscribe', 'publish');

/** Strings shaped like commands, with every field sometimes wrong, plus plain noise. */
const frames = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.json(),
  fc
    .record(
      {
        op: fc.oneof(op, fc.string(), fc.integer(), fc.constant(null)),
        channel: fc.oneof(channel, fc.string({ maxLength: 200 }), fc.integer()),
        id: fc.oneof(id, fc.double(), fc.string({ minLength: 65, maxLength: 80 }), fc.object()),
        data: fc.jsonValue(),
      },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o)),
);

test('parseCommand never throws and refuses only with documented codes', () => {
  fc.assert(
    fc.property(frames, (text) => {
      const result = parseCommand(text);
      if (isProtocolError(result)) {
        assert.ok(CODES.has(result.error), result.error);
        assert.equal(typeof result.message, 'string');
      } else {
        assert.ok(['subscribe', 'unsubscribe', 'publish', 'ping'].includes(result.op));
        if (result.op !== 'ping') assert.ok(isValidChannel(result.channel));
      }
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('valid commands round-trip exactly', () => {
  fc.assert(
    fc.property(op, channel, fc.option(id, { nil: undefined }), fc.jsonValue(), (o, c, i, data) => {
      const command: Record<string, unknown> = { op: o, channel: c };
      if (i !== undefined) command.id = i;
      if (o === 'publish') command.data = data;
      const parsed = parseCommand(JSON.stringify(command));
      // JSON has no -0: it comes back as 0, as it would off the wire.
      assert.deepEqual(parsed, JSON.parse(JSON.stringify(command)));
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test('deep nesting: parse and encode refuse or succeed, never throw', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 50_000 }), fc.constantFrom('[', '{"a":'), (depth, open) => {
      const close = open === '[' ? ']' : '}';
      const nest = `${open.repeat(depth)}${open === '[' ? '' : '1'}${close.repeat(depth)}`;
      const parsed = parseCommand(`{"op":"publish","channel":"c","data":${nest}}`);
      if (isProtocolError(parsed)) {
        assert.ok(CODES.has(parsed.error));
        return;
      }
      assert.equal(parsed.op, 'publish');
      const encoded = tryEncodeMessage('c', (parsed as { data: unknown }).data);
      if (isProtocolError(encoded)) assert.equal(encoded.error, 'invalid_message');
      else assert.ok(encoded.length > depth);
    }),
    { seed: SEED, numRuns: 60 },
  );
});

test('encodeMessage output is valid JSON carrying the data', () => {
  fc.assert(
    fc.property(channel, fc.jsonValue(), (c, data) => {
      const decoded = JSON.parse(encodeMessage(c, data).toString('utf8')) as { op: string; channel: string; data: unknown };
      assert.deepEqual(decoded, JSON.parse(JSON.stringify({ op: 'message', channel: c, data })));
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test('parsePublishBody and parseChannelsQuery never throw; results are valid or documented refusals', () => {
  fc.assert(
    fc.property(frames, fc.string({ maxLength: 400 }), (body, query) => {
      const b = parsePublishBody(body);
      if (isProtocolError(b)) assert.ok(CODES.has(b.error));
      else assert.ok(isValidChannel(b.channel) && 'data' in b);
      const q = parseChannelsQuery(query);
      if (isProtocolError(q)) assert.ok(CODES.has(q.error));
      else for (const c of q) assert.ok(isValidChannel(c));
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('channel patterns: never throw; exact patterns and prefixes grant what they say and nothing else', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(channel, channel.map((c) => `${c.slice(0, 20)}*`), fc.string()), { maxLength: 20 }), channel, (claim, probe) => {
      const parsed = ChannelPatterns.parse(claim, 'subscribe');
      if (typeof parsed === 'string') return;
      const expected = claim.some((p) => (p.endsWith('*') ? probe.startsWith(p.slice(0, -1)) : p === probe));
      assert.equal(parsed.allows(probe), expected);
      for (const p of claim) if (!p.endsWith('*')) assert.ok(parsed.allows(p));
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

/**
 * JSON text for value as a client might write it: random whitespace between tokens and random
 * characters of strings and keys written as \u escapes (rnd decides), so the scanner meets every
 * spelling JSON.parse accepts.
 */
function spell(value: unknown, rnd: () => number): string {
  const space = (): string => ['', '', ' ', '\n', '\t', '\r\n  '][Math.floor(rnd() * 6)]!;
  const str = (s: string): string => {
    let out = '"';
    for (const ch of s) {
      if (rnd() < 0.2) for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`;
      else out += JSON.stringify(ch).slice(1, -1);
    }
    return `${out}"`;
  };
  if (Array.isArray(value)) return `[${space()}${value.map((v) => `${space()}${spell(v, rnd)}${space()}`).join(',')}]`;
  if (typeof value === 'string') return str(value);
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).map(([k, v]) => `${space()}${str(k)}${space()}:${space()}${spell(v, rnd)}${space()}`);
    return `{${space()}${members.join(',')}${space()}}`;
  }
  return JSON.stringify(value);
}

function depth(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  return 1 + Math.max(0, ...Object.values(value).map(depth));
}

/** A publish frame around data, its members shuffled, sometimes with decoy `data` members before the real one. */
const publishFrames = fc.tuple(channel, fc.jsonValue(), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 2 }), fc.integer()).map(([c, data, decoys, seed]) => {
  const rnd = mulberry32(seed);
  const members: string[] = [`"op":${spell('publish', rnd)}`, `"channel":${spell(c, rnd)}`, `"id":${spell(seed, rnd)}`, `"other":${spell(decoys, rnd)}`];
  members.sort(() => rnd() - 0.5);
  const at = Math.floor(rnd() * (members.length + 1));
  const dataMembers = [...decoys, data].map((d) => `${spell('data', rnd)}:${spell(d, rnd)}`);
  members.splice(at, 0, ...dataMembers);
  return { channel: c, data, text: ` {${members.join(',')}} ` };
});

test('the scanner finds exactly the data JSON.parse keeps, whatever the spelling', () => {
  const span = new MemberSpan('data');
  fc.assert(
    fc.property(publishFrames, ({ data, text }) => {
      const bytes = Buffer.from(text);
      assert.ok(span.find(bytes), text);
      assert.deepEqual(JSON.parse(bytes.toString('utf8', span.start, span.end)), (JSON.parse(text) as { data: unknown }).data);
      assert.equal(span.depth, depth(data));
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('from bytes, a publish is spliced: what subscribers receive parses to what was sent', () => {
  fc.assert(
    fc.property(publishFrames, ({ channel: c, data, text }) => {
      const parsed = parseCommand(Buffer.from(text));
      assert.ok(!isProtocolError(parsed) && parsed.op === 'publish', text);
      assert.ok(parsed.raw !== undefined, 'spliced');
      const message = JSON.parse(encodeMessage(parsed.channel, parsed.data, parsed.raw).toString('utf8')) as unknown;
      assert.deepEqual(message, JSON.parse(JSON.stringify({ op: 'message', channel: c, data })));
      const body = parsePublishBody(Buffer.from(text));
      assert.ok(!isProtocolError(body) && body.raw !== undefined);
      assert.deepEqual(JSON.parse(encodeMessage(body.channel, body.data, body.raw).toString('utf8')), message);
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test('from bytes, deep nesting: refused past MAX_DATA_DEPTH, spliced up to it, never thrown', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 3 * MAX_DATA_DEPTH }), fc.constantFrom('[', '{"a":'), (levels, open) => {
      const close = open === '[' ? ']' : '}';
      const nest = `${open.repeat(levels)}${open === '[' ? '' : '1'}${close.repeat(levels)}`;
      const parsed = parseCommand(Buffer.from(`{"op":"publish","channel":"c","data":${nest}}`));
      if (levels > MAX_DATA_DEPTH) {
        assert.ok(isProtocolError(parsed));
        assert.deepEqual([parsed.error, parsed.op], [ErrorCode.InvalidMessage, 'publish']);
        return;
      }
      assert.ok(!isProtocolError(parsed) && parsed.op === 'publish' && parsed.raw !== undefined);
      const encoded = tryEncodeMessage('c', parsed.data, parsed.raw);
      assert.ok(!isProtocolError(encoded));
      assert.equal(encoded.toString(), `{"op":"message","channel":"c","data":${nest}}`);
    }),
    { seed: SEED, numRuns: 60 },
  );
});

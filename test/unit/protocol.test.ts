// The wire protocol: command parsing, HTTP publish bodies, encoders, and the ?channels query.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { messageData, messageHead, positionedMessage } from '../../services/gateway/src/bus/position.js';
import { ErrorCode } from '../../services/gateway/src/codes.js';
import {
  MAX_DATA_DEPTH,
  type ParseResult,
  type ProtocolError,
  encodeAck,
  encodeError,
  encodeHistory,
  encodeLost,
  encodeMessage,
  isProtocolError,
  isValidChannel,
  parseChannelsQuery,
  parseCommand,
  parseHistoryQuery,
  parsePublishBody,
  tryEncodeMessage,
} from '../../services/gateway/src/protocol.js';
import { mulberry32 } from '../helpers/random.js';

const CHANNEL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-';

const cmd = (value: unknown): ParseResult => parseCommand(JSON.stringify(value));

function assertError(result: unknown, error: ErrorCode): ProtocolError {
  assert.ok(result !== null && typeof result === 'object', 'expected an object');
  assert.ok(isProtocolError(result as object), `expected a protocol error, got ${JSON.stringify(result)}`);
  const err = result as ProtocolError;
  assert.equal(err.error, error);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0);
  return err;
}

/** Channels that must be rejected, with what makes each bad. */
const BAD_CHANNELS: [string, unknown][] = [
  ['empty', ''],
  ['129 characters', 'a'.repeat(129)],
  ['a space', 'a b'],
  ['a slash', 'a/b'],
  ['unicode', 'café'],
  ['an emoji', 'chan😀'],
  ['a quote', 'a"b'],
  ['a backslash', 'a\\b'],
  ['a newline', 'a\n'],
  ['a number', 42],
  ['null', null],
  ['an array', ['a']],
  ['an object', { name: 'a' }],
  ['a boolean', true],
];

describe('isValidChannel', () => {
  test('accepts every allowed character and 1 to 128 characters', { timeout: 5000 }, () => {
    for (const ch of CHANNEL_ALPHABET) assert.equal(isValidChannel(ch), true, `single ${JSON.stringify(ch)}`);
    assert.equal(isValidChannel(CHANNEL_ALPHABET), true);
    assert.equal(isValidChannel('x'.repeat(128)), true);
  });

  test('rejects bad channels', { timeout: 5000 }, () => {
    for (const [what, value] of BAD_CHANNELS) assert.equal(isValidChannel(value), false, what);
    assert.equal(isValidChannel(undefined), false);
  });
});

describe('parseCommand: valid commands', () => {
  test('subscribe and unsubscribe without id', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'news' }), { op: 'subscribe', channel: 'news' });
    assert.deepEqual(cmd({ op: 'unsubscribe', channel: 'news' }), { op: 'unsubscribe', channel: 'news' });
  });

  test('no id key is added when the frame had none', { timeout: 5000 }, () => {
    const result = cmd({ op: 'subscribe', channel: 'news' });
    assert.equal(Object.hasOwn(result, 'id'), false);
  });

  test('subscribe and unsubscribe with numeric and string ids', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', id: 7 }), { op: 'subscribe', channel: 'a', id: 7 });
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', id: 0 }), { op: 'subscribe', channel: 'a', id: 0 });
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', id: -3 }), { op: 'subscribe', channel: 'a', id: -3 });
    assert.deepEqual(cmd({ op: 'unsubscribe', channel: 'a', id: 'r1' }), { op: 'unsubscribe', channel: 'a', id: 'r1' });
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', id: '' }), { op: 'subscribe', channel: 'a', id: '' });
    const id64 = 'i'.repeat(64);
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', id: id64 }), { op: 'subscribe', channel: 'a', id: id64 });
    const maxSafe = Number.MAX_SAFE_INTEGER;
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', id: maxSafe }), { op: 'subscribe', channel: 'a', id: maxSafe });
  });

  test('publish with and without id', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'publish', channel: 'a', data: { x: 1 } }), { op: 'publish', channel: 'a', data: { x: 1 } });
    assert.deepEqual(cmd({ op: 'publish', channel: 'a', data: 'hi', id: 9 }), {
      op: 'publish',
      channel: 'a',
      data: 'hi',
      id: 9,
    });
    assert.deepEqual(cmd({ op: 'publish', channel: 'a', data: [1, 2], id: 'x' }), {
      op: 'publish',
      channel: 'a',
      data: [1, 2],
      id: 'x',
    });
  });

  test('publish with data null is valid', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'publish', channel: 'a', data: null }), { op: 'publish', channel: 'a', data: null });
  });

  test('publish with falsy data is valid', { timeout: 5000 }, () => {
    for (const data of [0, false, '', [], {}]) {
      assert.deepEqual(cmd({ op: 'publish', channel: 'a', data }), { op: 'publish', channel: 'a', data });
    }
  });

  test('extra fields are ignored', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', extra: true }), { op: 'subscribe', channel: 'a' });
  });

  test('a 128-character channel and every allowed character pass', { timeout: 5000 }, () => {
    const long = 'c'.repeat(128);
    assert.deepEqual(cmd({ op: 'subscribe', channel: long }), { op: 'subscribe', channel: long });
    assert.deepEqual(cmd({ op: 'subscribe', channel: CHANNEL_ALPHABET }), { op: 'subscribe', channel: CHANNEL_ALPHABET });
    for (const ch of CHANNEL_ALPHABET) {
      assert.deepEqual(cmd({ op: 'publish', channel: ch, data: 1 }), { op: 'publish', channel: ch, data: 1 });
    }
  });

  test('surrounding whitespace in the JSON text is fine', { timeout: 5000 }, () => {
    assert.deepEqual(parseCommand(' \n{"op":"subscribe","channel":"a"}\t'), { op: 'subscribe', channel: 'a' });
  });
});

describe('parseCommand: errors', () => {
  test('invalid JSON is invalid_json', { timeout: 5000 }, () => {
    for (const text of ['', '{', '{"op":', 'not json', "{'op':'subscribe'}", '{"op":"subscribe",}', '\u0000']) {
      assertError(parseCommand(text), ErrorCode.InvalidJson);
    }
  });

  test('non-object JSON is invalid_json', { timeout: 5000 }, () => {
    for (const text of ['[]', '[{"op":"subscribe","channel":"a"}]', '42', 'null', '"subscribe"', 'true']) {
      const err = assertError(parseCommand(text), ErrorCode.InvalidJson);
      assert.equal(err.op, undefined);
      assert.equal(err.id, undefined);
    }
  });

  test('missing or non-string op is invalid_message', { timeout: 5000 }, () => {
    assertError(cmd({ channel: 'a' }), ErrorCode.InvalidMessage);
    for (const op of [1, null, true, ['subscribe'], { op: 'subscribe' }]) {
      assertError(cmd({ op, channel: 'a' }), ErrorCode.InvalidMessage);
    }
  });

  test('invalid_message for a bad op carries a valid id back', { timeout: 5000 }, () => {
    const err = assertError(cmd({ channel: 'a', id: 5 }), ErrorCode.InvalidMessage);
    assert.equal(err.id, 5);
    assert.equal(err.op, undefined);
  });

  test('unknown op is unknown_op, with the id', { timeout: 5000 }, () => {
    for (const op of ['message', 'SUBSCRIBE', 'Publish', '', 'toString', '__proto__']) {
      const err = assertError(cmd({ op, channel: 'a', id: 'q' }), ErrorCode.UnknownOp);
      assert.equal(err.id, 'q');
      assert.equal(err.op, undefined);
    }
  });

  test('invalid id is invalid_message', { timeout: 5000 }, () => {
    const badIds: unknown[] = ['i'.repeat(65), 1.5, Number.MAX_SAFE_INTEGER + 1, null, true, [1], { n: 1 }];
    for (const id of badIds) {
      const err = assertError(cmd({ op: 'subscribe', channel: 'a', id }), ErrorCode.InvalidMessage);
      assert.equal(err.id, undefined, 'a bad id is not echoed back');
    }
    assertError(cmd({ op: 'publish', channel: 'a', data: 1, id: 2.5 }), ErrorCode.InvalidMessage);
  });

  test('invalid channels are invalid_channel', { timeout: 5000 }, () => {
    for (const op of ['subscribe', 'unsubscribe', 'publish'] as const) {
      for (const [what, channel] of BAD_CHANNELS) {
        const err = assertError(cmd({ op, channel, data: 1, id: 3 }), ErrorCode.InvalidChannel);
        assert.equal(err.id, 3, `${op} with ${what}`);
        assert.equal(err.op, op, `${op} with ${what}`);
      }
      assertError(cmd({ op, data: 1 }), ErrorCode.InvalidChannel);
    }
  });

  test('publish without data is invalid_message carrying op and id', { timeout: 5000 }, () => {
    const err = assertError(cmd({ op: 'publish', channel: 'a', id: 11 }), ErrorCode.InvalidMessage);
    assert.equal(err.op, 'publish');
    assert.equal(err.id, 11);
    const noId = assertError(cmd({ op: 'publish', channel: 'a' }), ErrorCode.InvalidMessage);
    assert.equal(noId.op, 'publish');
    assert.equal(Object.hasOwn(noId, 'id'), false);
  });

  test('subscribe ignores a missing data field', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a' }), { op: 'subscribe', channel: 'a' });
  });
});

describe('parsePublishBody', () => {
  test('valid bodies', { timeout: 5000 }, () => {
    assert.deepEqual(parsePublishBody('{"channel":"a","data":{"x":[1,2]}}'), { channel: 'a', data: { x: [1, 2] } });
    assert.deepEqual(parsePublishBody('{"channel":"a","data":null}'), { channel: 'a', data: null });
    assert.deepEqual(parsePublishBody('{"channel":"a","data":0,"op":"ignored"}'), { channel: 'a', data: 0 });
    const long = 'z'.repeat(128);
    assert.deepEqual(parsePublishBody(JSON.stringify({ channel: long, data: 's' })), { channel: long, data: 's' });
  });

  test('invalid JSON and non-objects are invalid_json', { timeout: 5000 }, () => {
    for (const text of ['', '{', 'nope', '[]', '1', 'null', '"s"']) assertError(parsePublishBody(text), ErrorCode.InvalidJson);
  });

  test('bad channels are invalid_channel', { timeout: 5000 }, () => {
    for (const [what, channel] of BAD_CHANNELS) {
      const err = assertError(parsePublishBody(JSON.stringify({ channel, data: 1 })), ErrorCode.InvalidChannel);
      assert.equal(err.op, undefined, what);
    }
    assertError(parsePublishBody('{"data":1}'), ErrorCode.InvalidChannel);
  });

  test('a missing data field is invalid_message', { timeout: 5000 }, () => {
    assertError(parsePublishBody('{"channel":"a"}'), ErrorCode.InvalidMessage);
  });
});

describe('encoders', () => {
  test('encodeMessage parses back to {op:"message",channel,data}', { timeout: 5000 }, () => {
    const samples: unknown[] = [
      { nested: { deep: { deeper: [1, { x: 'y' }] } }, n: -1.5e-7 },
      'plain',
      'with "quotes" and \\backslashes\\ and \n newlines',
      'unicode: café 😀 中文 \u2028\u2029',
      '',
      0,
      -42,
      3.14159,
      1e300,
      true,
      false,
      null,
      [],
      [1, 'two', null, [3], { four: 4 }],
      {},
    ];
    for (const data of samples) {
      for (const channel of ['a', CHANNEL_ALPHABET, 'x'.repeat(128)]) {
        const buf = encodeMessage(channel, data);
        assert.ok(Buffer.isBuffer(buf));
        assert.deepEqual(JSON.parse(buf.toString('utf8')), { op: 'message', channel, data });
      }
    }
  });

  test('encodeMessage turns undefined data into null', { timeout: 5000 }, () => {
    assert.deepEqual(JSON.parse(encodeMessage('a', undefined).toString()), { op: 'message', channel: 'a', data: null });
  });

  test('encodeMessage is UTF-8', { timeout: 5000 }, () => {
    const buf = encodeMessage('a', 'é');
    assert.equal(buf.length, Buffer.byteLength(buf.toString('utf8')));
    assert.ok(buf.includes(Buffer.from('é', 'utf8')));
  });

  test('encodeError shape, with and without id', { timeout: 5000 }, () => {
    assert.deepEqual(JSON.parse(encodeError(ErrorCode.InvalidJson, 'bad').toString()), {
      op: 'error',
      code: 'invalid_json',
      message: 'bad',
    });
    assert.deepEqual(JSON.parse(encodeError(ErrorCode.UnknownOp, 'what "op"?', 7).toString()), {
      op: 'error',
      code: 'unknown_op',
      message: 'what "op"?',
      id: 7,
    });
    assert.deepEqual(JSON.parse(encodeError(ErrorCode.InvalidChannel, 'm', 'req-1').toString()).id, 'req-1');
  });

  test('encodeAck shape', { timeout: 5000 }, () => {
    assert.deepEqual(JSON.parse(encodeAck(3).toString()), { op: 'ack', id: 3 });
    assert.deepEqual(JSON.parse(encodeAck('abc').toString()), { op: 'ack', id: 'abc' });
  });
});

describe('parseChannelsQuery', () => {
  test('null and empty give no channels', { timeout: 5000 }, () => {
    assert.deepEqual(parseChannelsQuery(null), []);
    assert.deepEqual(parseChannelsQuery(''), []);
  });

  test('splits on commas, keeps order, dedupes', { timeout: 5000 }, () => {
    assert.deepEqual(parseChannelsQuery('a'), ['a']);
    assert.deepEqual(parseChannelsQuery('b,a,b,c,a'), ['b', 'a', 'c']);
    assert.deepEqual(parseChannelsQuery(CHANNEL_ALPHABET), [CHANNEL_ALPHABET]);
  });

  test('rejects a bad name', { timeout: 5000 }, () => {
    for (const query of ['a,b c', 'a,,b', 'a,', ',a', 'a/b', 'x'.repeat(129), 'ok,café']) {
      const err = assertError(parseChannelsQuery(query), ErrorCode.InvalidChannel);
      assert.equal(err.message.includes('\n'), false);
    }
  });
});

describe('parseCommand never throws', () => {
  const FRAGMENTS = [
    '{', '}', '[', ']', ',', ':', '"', '"op"', '"channel"', '"data"', '"id"', '"subscribe"', '"unsubscribe"',
    '"publish"', '"a"', '"a b"', '"__proto__"', '"constructor"', 'null', 'true', 'false', '0', '-1', '1.5e3',
    '9007199254740993', '"\\u0000"', '"\\ud800"', '\\', ' ', '\n', '"x"', '{}', '[]', '"op":"publish"',
  ];

  function randomInput(rand: () => number): string {
    const kind = Math.floor(rand() * 4);
    const len = Math.floor(rand() * 64);
    if (kind === 0) {
      // Random bytes decoded as UTF-8 (with replacement characters) or latin1.
      const bytes = Buffer.alloc(len);
      for (let i = 0; i < len; i++) bytes[i] = Math.floor(rand() * 256);
      return bytes.toString(rand() < 0.5 ? 'utf8' : 'latin1');
    }
    if (kind === 1) {
      // Random JSON-ish fragments: mostly invalid, sometimes valid.
      let out = '';
      for (let i = 0; i < len / 4; i++) out += FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)];
      return out;
    }
    if (kind === 2) {
      // Valid JSON objects with random field values.
      const pick = (): unknown => {
        const values: unknown[] = [null, 1, 1.5, -0, 'publish', 'subscribe', 'a', 'a/b', [], {}, true, 'x'.repeat(70)];
        return values[Math.floor(rand() * values.length)];
      };
      const obj: Record<string, unknown> = {};
      for (const key of ['op', 'channel', 'data', 'id']) if (rand() < 0.7) obj[key] = pick();
      return JSON.stringify(obj);
    }
    // Random code points, including lone surrogates.
    let out = '';
    for (let i = 0; i < len; i++) out += String.fromCharCode(Math.floor(rand() * 0x10000));
    return out;
  }

  test('on 2000 seeded random inputs, and results are well formed', { timeout: 10_000 }, () => {
    const rand = mulberry32(20240521);
    const codes = new Set<string>(Object.values(ErrorCode));
    for (let i = 0; i < 2000; i++) {
      const input = randomInput(rand);
      let result: ParseResult;
      try {
        result = parseCommand(input);
      } catch (err) {
        assert.fail(`parseCommand threw on input #${i} ${JSON.stringify(input)}: ${String(err)}`);
      }
      if (isProtocolError(result)) {
        assert.ok(codes.has(result.error), `unknown error code ${result.error}`);
      } else {
        assert.ok(['subscribe', 'unsubscribe', 'publish', 'ping'].includes(result.op));
        if (result.op !== 'ping') assert.ok(isValidChannel(result.channel));
        if (result.op === 'publish') assert.ok('data' in result);
      }
    }
  });
});

describe('tryEncodeMessage', () => {
  test('encodes like encodeMessage', { timeout: 5000 }, () => {
    assert.deepEqual(tryEncodeMessage('a', { x: [1, 'two'] }), encodeMessage('a', { x: [1, 'two'] }));
  });

  test('refuses data nested too deeply to re-encode instead of throwing', { timeout: 5000 }, () => {
    const depth = 30_000;
    const deep: unknown = JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);
    const result = tryEncodeMessage('a', deep);
    assert.ok(isProtocolError(result));
    assert.equal(result.error, ErrorCode.InvalidMessage);
    assert.equal(result.op, 'publish');
  });
});

describe('splicing the client\'s data bytes (issue 13)', () => {
  const frame = Buffer.from('{ "op" : "publish", "channel":"news", "data" : { "b" : [1, 2.50, "\\u00e9"] , "a" : null } , "id":7 }');
  const spliced = '{"op":"message","channel":"news","data":{ "b" : [1, 2.50, "\\u00e9"] , "a" : null }}';

  test('a publish parsed from bytes carries where its data is; encoding copies those bytes as sent', { timeout: 5000 }, () => {
    const parsed = parseCommand(frame);
    assert.ok(!isProtocolError(parsed) && parsed.op === 'publish' && parsed.raw !== undefined);
    assert.deepEqual(parsed.data, { b: [1, 2.5, 'é'], a: null });
    assert.equal(parsed.id, 7);
    assert.equal(encodeMessage(parsed.channel, parsed.data, parsed.raw).toString(), spliced);
    assert.deepEqual(JSON.parse(spliced), { op: 'message', channel: 'news', data: parsed.data });
    // Parsed from a string there is nothing to splice: the data is re-encoded, as before.
    assert.deepEqual(parseCommand(frame.toString()), { op: 'publish', channel: 'news', data: parsed.data, id: 7 });
  });

  test('POST /publish bodies are spliced too, unless they are not UTF-8 (then re-encoded, bad bytes as U+FFFD)', { timeout: 5000 }, () => {
    const body = parsePublishBody(Buffer.from('{"channel":"news","data":["ok", 1]}'));
    assert.ok(!isProtocolError(body) && body.raw !== undefined);
    assert.equal(encodeMessage(body.channel, body.data, body.raw).toString(), '{"op":"message","channel":"news","data":["ok", 1]}');
    const bad = Buffer.concat([Buffer.from('{"channel":"news","data":"a'), Buffer.from([0xff]), Buffer.from('b"}')]);
    const fallback = parsePublishBody(bad);
    assert.ok(!isProtocolError(fallback));
    assert.equal(fallback.raw, undefined);
    assert.equal(encodeMessage(fallback.channel, fallback.data, fallback.raw).toString(), '{"op":"message","channel":"news","data":"a\ufffdb"}');
  });

  test('the spliced message works as a history head: its data slices back out as sent', { timeout: 5000 }, () => {
    const parsed = parseCommand(frame);
    assert.ok(!isProtocolError(parsed) && parsed.op === 'publish');
    const stored = positionedMessage(messageHead(encodeMessage(parsed.channel, parsed.data, parsed.raw)), 3, 'q3LwG0c1xZ_a');
    assert.equal(messageData(stored, 'news', 3, 'q3LwG0c1xZ_a').toString(), '{ "b" : [1, 2.50, "\\u00e9"] , "a" : null }');
  });

  test('data nested deeper than MAX_DATA_DEPTH is invalid_message from bytes; at the bound it is spliced', { timeout: 5000 }, () => {
    const nest = (levels: number): string => `${'['.repeat(levels)}${']'.repeat(levels)}`;
    const over = parseCommand(Buffer.from(`{"op":"publish","channel":"a","id":3,"data":${nest(MAX_DATA_DEPTH + 1)}}`));
    assert.deepEqual(assertError(over, ErrorCode.InvalidMessage), { error: ErrorCode.InvalidMessage, message: `data nests deeper than ${MAX_DATA_DEPTH} levels`, id: 3, op: 'publish' });
    assertError(parsePublishBody(Buffer.from(`{"channel":"a","data":${nest(MAX_DATA_DEPTH + 1)}}`)), ErrorCode.InvalidMessage);
    const at = parseCommand(Buffer.from(`{"op":"publish","channel":"a","data":${nest(MAX_DATA_DEPTH)}}`));
    assert.ok(!isProtocolError(at) && at.op === 'publish');
    assert.equal(tryEncodeMessage('a', at.data, at.raw).toString(), `{"op":"message","channel":"a","data":${nest(MAX_DATA_DEPTH)}}`);
  });
});

describe('positions on the wire (issue 10)', () => {
  const E = 'q3LwG0c1xZ_a';

  test('subscribe with since: a whole offset and an epoch as the gateway sends them', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', id: 1, since: { offset: 41, epoch: E } }), {
      op: 'subscribe',
      channel: 'a',
      id: 1,
      since: { offset: 41, epoch: E },
    });
    assert.deepEqual(cmd({ op: 'subscribe', channel: 'a', since: { offset: 0, epoch: E, extra: true } }), {
      op: 'subscribe',
      channel: 'a',
      since: { offset: 0, epoch: E },
    });
    for (const since of [null, 3, 'x', [], {}, { offset: 1 }, { epoch: E }, { offset: -1, epoch: E }, { offset: 1.5, epoch: E },
      { offset: Number.MAX_SAFE_INTEGER + 1, epoch: E }, { offset: '1', epoch: E }, { offset: 1, epoch: '' }, { offset: 1, epoch: 'has space' },
      { offset: 1, epoch: 'x'.repeat(65) }, { offset: 1, epoch: 7 }]) {
      const err = assertError(cmd({ op: 'subscribe', channel: 'a', id: 'q', since }), ErrorCode.InvalidMessage);
      assert.equal(err.id, 'q', JSON.stringify(since));
    }
  });

  test('since is read on subscribe only', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'unsubscribe', channel: 'a', since: 'ignored' }), { op: 'unsubscribe', channel: 'a' });
  });

  test('ping needs no channel; its id is kept', { timeout: 5000 }, () => {
    assert.deepEqual(cmd({ op: 'ping' }), { op: 'ping' });
    assert.deepEqual(cmd({ op: 'ping', id: 9, channel: 'bad channel' }), { op: 'ping', id: 9 });
  });

  test('acks: the position and recovered only when given', { timeout: 5000 }, () => {
    const parse = (b: Buffer): unknown => JSON.parse(b.toString());
    assert.deepEqual(parse(encodeAck(1, { offset: 0, epoch: E })), { op: 'ack', id: 1, offset: 0, epoch: E });
    assert.deepEqual(parse(encodeAck('s', { offset: 5, epoch: E }, true)), { op: 'ack', id: 's', offset: 5, epoch: E, recovered: true });
    assert.deepEqual(parse(encodeAck(2, null, false)), { op: 'ack', id: 2, recovered: false });
    assert.equal(encodeAck(3, { offset: 7, epoch: E }).toString(), `{"op":"ack","id":3,"offset":7,"epoch":"${E}"}`);
  });

  test('lost: channel, offset, epoch', { timeout: 5000 }, () => {
    assert.equal(encodeLost('room.1', { offset: 57, epoch: E }).toString(), `{"op":"lost","channel":"room.1","offset":57,"epoch":"${E}"}`);
  });

  test('GET /history query: defaults, bounds, and the error code of each bad parameter', { timeout: 5000 }, () => {
    const q = (s: string): ReturnType<typeof parseHistoryQuery> => parseHistoryQuery(new URLSearchParams(s), 100);
    assert.deepEqual(q('channel=a'), { channel: 'a', since: 0, epoch: null, limit: 100 });
    assert.deepEqual(q(`channel=a&since=7&epoch=${E}&limit=3`), { channel: 'a', since: 7, epoch: E, limit: 3 });
    for (const [s, code] of [
      ['', ErrorCode.InvalidChannel],
      ['channel=a%20b', ErrorCode.InvalidChannel],
      ['channel=a&since=-1', ErrorCode.InvalidMessage],
      ['channel=a&since=1.5', ErrorCode.InvalidMessage],
      ['channel=a&since=', ErrorCode.InvalidMessage],
      ['channel=a&epoch=', ErrorCode.InvalidMessage],
      ['channel=a&limit=0', ErrorCode.InvalidMessage],
      ['channel=a&limit=101', ErrorCode.InvalidMessage],
    ] as const) {
      assertError(q(s), code);
    }
  });

  test('GET /history answer: each data sliced from the stored bytes, unchanged', { timeout: 5000 }, () => {
    const stored = (offset: number, data: unknown): { offset: number; bytes: Buffer } => ({
      offset,
      bytes: Buffer.concat([messageHead(encodeMessage('c', data)), Buffer.from(`,"offset":${offset},"epoch":"${E}"}`)]),
    });
    const body = encodeHistory('c', { epoch: E, top: 9, complete: false, messages: [stored(8, { a: [1, 'ü'] }), stored(9, null)] });
    assert.deepEqual(JSON.parse(body.toString()), { epoch: E, offset: 9, messages: [{ offset: 8, data: { a: [1, 'ü'] } }, { offset: 9, data: null }] });
    assert.deepEqual(JSON.parse(encodeHistory('c', { epoch: E, top: 0, complete: true, messages: [] }).toString()), { epoch: E, offset: 0, messages: [] });
  });
});

// The member scanner (json-span.ts): the byte span of the last top-level member of a name in JSON
// text JSON.parse accepted, and how deeply it nests. Random documents are in protocol-fuzz.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemberSpan } from '../../services/gateway/src/json-span.js';

/** The text of the span found in json, or null when find() says there is none. */
function dataOf(json: string, name = 'data'): string | null {
  const span = new MemberSpan(name);
  const bytes = Buffer.from(json);
  return span.find(bytes) ? bytes.toString('utf8', span.start, span.end) : null;
}

function depthOf(json: string): number {
  const span = new MemberSpan('data');
  assert.ok(span.find(Buffer.from(json)), json);
  return span.depth;
}

describe('MemberSpan', () => {
  test('the value of every kind, wherever the member stands', { timeout: 5000 }, () => {
    const values = ['{"x":1}', '[1,"two",null]', '"text"', '""', '0', '-1.5e-7', '1E+300', 'true', 'false', 'null', '{}', '[]'];
    for (const v of values) {
      assert.equal(dataOf(`{"data":${v}}`), v, `alone: ${v}`);
      assert.equal(dataOf(`{"op":"publish","channel":"a","data":${v}}`), v, `last: ${v}`);
      assert.equal(dataOf(`{"data":${v},"op":"publish","id":7}`), v, `first: ${v}`);
      assert.equal(dataOf(`{"op":"publish","data":${v},"id":"x"}`), v, `between: ${v}`);
    }
  });

  test('whitespace anywhere is skipped and never part of the span', { timeout: 5000 }, () => {
    assert.equal(dataOf(' \n\t{ "op" : "publish" ,\r\n "data"\t:\n [ 1 , { "a" : 2 } ] \n, "id" : 3 }\n '), '[ 1 , { "a" : 2 } ]');
    assert.equal(dataOf('{"data" : 12 }'), '12');
    assert.equal(dataOf('{"data":true\n,"x":1}'), 'true');
  });

  test('the last of duplicate members, as JSON.parse keeps it', { timeout: 5000 }, () => {
    const json = '{"data":1,"op":"publish","data":{"second":true},"id":2}';
    assert.equal(dataOf(json), '{"second":true}');
    assert.deepEqual(JSON.parse(dataOf(json)!), (JSON.parse(json) as { data: unknown }).data);
  });

  test('a key written with escapes is the same key', { timeout: 5000 }, () => {
    assert.equal(dataOf('{"d\\u0061ta":"escaped"}'), '"escaped"');
    assert.equal(dataOf('{"\\u0064\\u0061\\u0074\\u0061":1}'), '1');
    assert.equal(dataOf('{"data":1,"dat\\u0061":2}'), '2');
    // Escapes that decode to other keys are other keys.
    assert.equal(dataOf('{"d\\u0062ta":1}'), null);
    assert.equal(dataOf('{"dat\\"a":1}'), null);
    assert.equal(dataOf('{"data\\n":1,"data":2}'), '2');
  });

  test('only top-level members: the name nested or inside a string does not count', { timeout: 5000 }, () => {
    assert.equal(dataOf('{"x":{"data":1}}'), null);
    assert.equal(dataOf('{"x":[{"data":1}],"data":2}'), '2');
    assert.equal(dataOf('{"data":{"data":{"data":3}}}'), '{"data":{"data":3}}');
    assert.equal(dataOf('{"s":"\\"data\\":5,","data":6}'), '6');
    assert.equal(dataOf('{"s":"{\\"data\\":[1","data":"}]"}'), '"}]"');
    assert.equal(dataOf('{"dat":1,"datas":2,"Data":3}'), null);
  });

  test('strings: escaped quotes and backslashes, short and long', { timeout: 5000 }, () => {
    for (const body of ['\\"', '\\\\', '\\\\\\"', 'a\\\\', '\\\\\\\\', '\\u0022', '\\/\\b\\f\\n\\r\\t']) {
      for (const pad of ['', 'x'.repeat(15), 'x'.repeat(16), 'y'.repeat(17), 'z'.repeat(300)]) {
        for (const s of [`"${pad}${body}"`, `"${body}${pad}"`, `"${pad}${body}${pad}${body}"`]) {
          assert.equal(dataOf(`{"data":${s},"id":1}`), s, s);
          assert.equal(dataOf(`{"k":${s},"data":[${s}]}`), `[${s}]`, s);
        }
      }
    }
  });

  test('UTF-8 multi-byte text is opaque: its bytes are never structural', { timeout: 5000 }, () => {
    const text = '"café 😀 中文 \u2028\u2029 ÿ\u00ff\u0100 \uffff"';
    assert.equal(dataOf(`{"ключ":${text},"data":${text}}`), text);
    assert.equal(dataOf(`{"data":{"ключ":[${text}]},"ü":1}`), `{"ключ":[${text}]}`);
  });

  test('depth: 0 for a scalar, one per level of [ or {', { timeout: 5000 }, () => {
    assert.equal(depthOf('{"data":"[[[{{"}'), 0);
    assert.equal(depthOf('{"data":42}'), 0);
    assert.equal(depthOf('{"data":[]}'), 1);
    assert.equal(depthOf('{"data":{"a":1,"b":[2]}}'), 2);
    assert.equal(depthOf('{"data":[[],[[]],[]]}'), 3);
    assert.equal(depthOf('{"data":[{"s":"]]]}}}"},[{}]]}'), 3);
    assert.equal(depthOf(`{"x":${'['.repeat(50)}${']'.repeat(50)},"data":[1]}`), 1);
    assert.equal(depthOf(`{"data":${'['.repeat(5000)}${']'.repeat(5000)}}`), 5000);
  });

  test('none: no such member, an empty object, not an object', { timeout: 5000 }, () => {
    for (const json of ['{}', ' { } ', '{"op":"publish"}', '[{"data":1}]', '"data"', '1', 'null']) {
      assert.equal(dataOf(json), null, json);
    }
  });

  test('one scanner serves many documents: a miss after a hit says none', { timeout: 5000 }, () => {
    const span = new MemberSpan('data');
    assert.equal(span.find(Buffer.from('{"data":[1,2]}')), true);
    assert.deepEqual([span.start, span.end, span.depth], [8, 13, 1]);
    assert.equal(span.find(Buffer.from('{"op":"ping"}')), false);
    assert.equal(span.find(Buffer.from('{"id":1,"data":"x"}')), true);
    assert.deepEqual([span.start, span.end, span.depth], [15, 18, 0]);
  });

  test('any member name', { timeout: 5000 }, () => {
    assert.equal(dataOf('{"op":"publish","channel":"news"}', 'channel'), '"news"');
    assert.equal(dataOf('{"ключ":[1]}', 'ключ'), '[1]');
    assert.equal(dataOf('{"\\u043a\\u043b\\u044e\\u0447":2}', 'ключ'), '2');
  });

  test('text JSON.parse refused is never a reason to throw or hang', { timeout: 5000 }, () => {
    for (const json of ['', '{', '{"data"', '{"data":', '{"data":"unterminated', '{"data":[1,2', '{"a" 1}', '{"data":1,}', '{"data\\', '{"da']) {
      const span = new MemberSpan('data');
      const found = span.find(Buffer.from(json));
      if (found) assert.ok(span.start <= span.end && span.end <= json.length, json);
    }
  });
});

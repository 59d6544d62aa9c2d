// The position header on the bus: round trip with the Lua's layout, views instead of copies,
// refusal of anything else, and the client bytes the script and the memory history both build.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENVELOPE_BYTES, writeEnvelope } from '../../services/gateway/src/bus/envelope.js';
import {
  EPOCH_BYTES,
  EpochSource,
  MAX_EPOCH_LENGTH,
  epochFrom,
  hasPosition,
  isValidEpoch,
  messageData,
  messageHead,
  positionPayload,
  positionTail,
  positionedMessage,
  readEpoch,
  readOffset,
  readPositioned,
  writePositioned,
} from '../../services/gateway/src/bus/position.js';

const client = (channel: string, data: unknown): Buffer =>
  Buffer.from(`{"op":"message","channel":"${channel}","data":${JSON.stringify(data)}}`);

describe('position header', () => {
  test('round-trips offset and epoch, and exposes the client bytes as a view', () => {
    for (const offset of [1, 9, 10, 12345, 2 ** 48, 999_999_999_999_999]) {
      const bytes = positionedMessage(messageHead(client('c', { a: 'é' })), offset, 'Ab_-9zZ0xyQ1');
      const m = writePositioned(bytes, offset, 'Ab_-9zZ0xyQ1');
      assert.ok(hasPosition(m));
      assert.equal(readOffset(m), offset);
      assert.equal(readEpoch(m), 'Ab_-9zZ0xyQ1');
      const payload = positionPayload(m);
      assert.deepEqual(payload, bytes);
      assert.equal(payload.buffer, m.buffer, 'same memory');
      assert.deepEqual(readPositioned(m), { offset, epoch: 'Ab_-9zZ0xyQ1', bytes: payload });
    }
  });

  test('matches the layout the Lua builds: 0xFD, 1, digits, epoch length, digits, epoch, bytes', () => {
    const m = writePositioned(Buffer.from('{}'), 42, 'EPOCH');
    assert.deepEqual([...m.subarray(0, 4)], [0xfd, 1, 2, 5]);
    assert.equal(m.subarray(4).toString('latin1'), '42EPOCH{}');
  });

  test('refuses JSON, the envelope, short and inconsistent headers, other versions', () => {
    assert.equal(hasPosition(client('c', 1)), false);
    const enveloped = Buffer.alloc(ENVELOPE_BYTES + 2);
    writeEnvelope(enveloped, 1, 1, 1);
    assert.equal(hasPosition(enveloped), false);
    const good = writePositioned(Buffer.from('{}'), 7, 'e');
    assert.ok(hasPosition(good));
    assert.equal(hasPosition(good.subarray(0, 5)), false, 'no client bytes left');
    for (const [at, value] of [[1, 2], [2, 0], [2, 16], [3, 0], [3, MAX_EPOCH_LENGTH + 1], [2, 200]] as const) {
      const bad = Buffer.from(good);
      bad[at] = value;
      assert.equal(hasPosition(bad), false, `byte ${at} = ${value}`);
    }
    assert.throws(() => writePositioned(Buffer.from('{}'), 7, 'bad"epoch'));
    assert.throws(() => writePositioned(Buffer.from('{}'), 10 ** 15, 'e'));
  });

  test('head + tail is the client frame with its position, data recoverable as a view', () => {
    const data = { text: 'x"y', list: [1, null] };
    const bytes = positionedMessage(messageHead(client('room.1', data)), 3, 'E1');
    assert.deepEqual(JSON.parse(bytes.toString()), { op: 'message', channel: 'room.1', data, offset: 3, epoch: 'E1' });
    assert.equal(bytes.toString().endsWith(positionTail(3, 'E1')), true);
    assert.deepEqual(JSON.parse(messageData(bytes, 'room.1', 3, 'E1').toString()), data);
    assert.throws(() => messageHead(Buffer.from('{"op":"message"')), 'a head must come from a whole frame');
  });

  test('epochs: 12 base64url characters, valid, fresh each time', () => {
    const bytes = Buffer.alloc(EPOCH_BYTES, 0xff);
    assert.equal(epochFrom(bytes), '____________');
    const source = new EpochSource();
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(source.next()); // crosses the pool's refill
    assert.equal(seen.size, 1000);
    assert.ok([...seen].every((e) => isValidEpoch(e) && e.length === 12));
    assert.equal(isValidEpoch(''), false);
    assert.equal(isValidEpoch('a'.repeat(65)), false);
    assert.equal(isValidEpoch(7), false);
  });
});

// frame.ts: the text frame the gateway builds itself is byte for byte the frame ws would send.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as ws from 'ws';
import { pongFrame, textFrame } from '../../services/gateway/src/frame.js';

const { Sender } = ws as unknown as { Sender: { frame(data: Buffer, options: object): Buffer[] } };
const wsFrame = (payload: Buffer, opcode: number): Buffer => Buffer.concat(Sender.frame(payload, { fin: true, opcode, mask: false, readOnly: false, rsv1: false }));

describe('textFrame', () => {
  test('equals ws framing at every length class boundary (7-bit, 16-bit, 64-bit lengths)', { timeout: 5000 }, () => {
    for (const n of [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000]) {
      const payload = Buffer.alloc(n, 0x61 + (n % 26));
      const frame = textFrame(payload);
      assert.deepEqual(frame, wsFrame(payload, 0x1), `length ${n}`);
      assert.equal(frame.length, n + (n < 126 ? 2 : n < 65536 ? 4 : 10));
    }
  });

  test('copies the payload: a view into a larger buffer frames only its own bytes, and later writes to it do not show', { timeout: 5000 }, () => {
    const bus = Buffer.from('HEADER{"op":"message"}TAIL');
    const payload = bus.subarray(6, 22);
    const frame = textFrame(payload);
    bus.fill(0x20);
    assert.deepEqual(frame, Buffer.concat([Buffer.from([0x81, 16]), Buffer.from('{"op":"message"}')]));
  });

  test('pongFrame is a pong carrying the ping payload', { timeout: 5000 }, () => {
    assert.deepEqual(pongFrame(Buffer.from('hi')), wsFrame(Buffer.from('hi'), 0xa));
  });
});

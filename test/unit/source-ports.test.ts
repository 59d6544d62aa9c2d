import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AddressBlocks, FIRST_SOURCE_PORT, LAST_SOURCE_PORT, SourcePorts, sourceAddress } from '../../tools/loadgen/src/source-ports.js';

describe('SourcePorts', () => {
  test('hands out the range in turn and wraps around', () => {
    const ports = new SourcePorts('127.0.5.2', 100, 102);
    assert.equal(ports.size, 3);
    assert.deepEqual([ports.next(), ports.next(), ports.next(), ports.next()], [100, 101, 102, 100]);
  });

  test('the default range stays below the kernel ephemeral range and holds a load process share', () => {
    const ports = new SourcePorts('127.0.5.2');
    assert.equal(ports.next(), FIRST_SOURCE_PORT);
    assert.ok(LAST_SOURCE_PORT < 32_768);
    // (i) gives a load process 12,500 connections, (e) 10,000.
    assert.ok(ports.size >= 20_000);
  });

  test('refuses a range that is empty or out of bounds', () => {
    assert.throws(() => new SourcePorts('127.0.0.2', 10, 9), RangeError);
    assert.throws(() => new SourcePorts('127.0.0.2', 0, 9), RangeError);
    assert.throws(() => new SourcePorts('127.0.0.2', 60_000, 70_000), RangeError);
  });
});

describe('source addresses', () => {
  test('load process i of block b is 127.0.b.(2+i)', () => {
    assert.equal(sourceAddress(7, 0), '127.0.7.2');
    assert.equal(sourceAddress(254, 252), '127.0.254.254');
    assert.throws(() => sourceAddress(0, 0), RangeError);
    assert.throws(() => sourceAddress(1, 253), RangeError);
  });

  test('each set of load processes takes the next block, 1 to 254, wrapping', () => {
    const blocks = new AddressBlocks(252);
    assert.deepEqual([blocks.next(), blocks.next(), blocks.next()], [253, 254, 1]);
    assert.equal(new AddressBlocks(-3).next(), 4);
  });
});

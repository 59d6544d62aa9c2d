// Property tests (fast-check, seeded, bounded) with raw frames on real sockets to a real gateway:
// random bytes, invalid UTF-8, bad opcodes, unmasked, fragmented and oversized frames, deep JSON,
// and floods of subscribe ops. Every input gets its documented error or close code, the process
// never exits, and a control client on the same gateway keeps being served throughout.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { isValidEpoch } from '../../services/gateway/src/bus/position.js';
import { CloseCode, ErrorCode } from '../../services/gateway/src/codes.js';
import type { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { RawSocket, frame, text } from '../helpers/rawws.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const MAX_MESSAGE_BYTES = 4096;
const MAX_CHANNELS = 16;
const SEED = 20251126;
const ERROR_CODES = new Set<string>(Object.values(ErrorCode));
const CLOSE_CODES = new Set<number>(Object.values(CloseCode));

describe('fuzzing raw frames against a real gateway', { timeout: 120_000 }, () => {
  const fx = useFixture();
  let gateway: GatewayProcess;
  let control: TestClient;
  let controlSeq = 0;

  /** The gateway is alive and a well-behaved client on it is served end to end. */
  const stillServing = async (): Promise<void> => {
    assert.equal(gateway.proc.exitCode, null, 'the gateway process is alive');
    const data = `control-${++controlSeq}`;
    assert.equal((await control.request({ op: 'publish', channel: 'control', data }, 5000)).op, 'ack');
    await control.waitFor((f) => f.data === data, 5000, 'the control message');
  };

  /** Sends the bytes on a fresh raw connection and returns what the server did. */
  const exchange = async (bytes: Buffer[], until?: (texts: number) => boolean, timeoutMs = 1500) => {
    const raw = await RawSocket.open(gateway.port);
    try {
      for (const b of bytes) raw.write(b);
      return await raw.outcome(timeoutMs, until === undefined ? undefined : (o) => until(o.texts.length));
    } finally {
      raw.destroy();
    }
  };

  const assertDocumented = (o: { closeCode: number | null; texts: Record<string, unknown>[] }): void => {
    if (o.closeCode !== null) assert.ok(CLOSE_CODES.has(o.closeCode), `undocumented close code ${o.closeCode}`);
    for (const t of o.texts) {
      if (t.op === 'error') assert.ok(ERROR_CODES.has(t.code as string), `undocumented error code ${String(t.code)}`);
      else assert.ok(t.op === 'ack' || t.op === 'message', `unexpected op ${String(t.op)}`);
    }
  };

  before(async () => {
    gateway = await fx.gateway({
      REDIS_PREFIX: uniquePrefix(),
      MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
      QUEUE_MAX_BYTES: '65536',
      MAX_CHANNELS_PER_CLIENT: String(MAX_CHANNELS),
    });
    control = await fx.connect(gateway.ws(['control']));
  });

  test('random bytes after the handshake: a documented close code or nothing; never a crash', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2048 }), async (bytes) => {
        assertDocumented(await exchange([Buffer.from(bytes)], undefined, 300));
      }),
      { seed: SEED, numRuns: 40 },
    );
    await stillServing();
  });

  test('text frames with arbitrary bytes: invalid UTF-8 closes 1007; valid UTF-8 gets a documented reply', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (bytes) => {
        const payload = Buffer.from(bytes);
        const valid = Buffer.from(payload.toString('utf8')).equals(payload);
        const o = await exchange([text(payload)], (n) => n >= 1);
        assertDocumented(o);
        if (valid) {
          assert.equal(o.closeCode, null, 'valid UTF-8 never closes');
          assert.equal(o.texts[0]?.op, 'error', 'random text is answered with an error frame');
        } else {
          assert.equal(o.closeCode, 1007);
        }
      }),
      { seed: SEED, numRuns: 60 },
    );
    await stillServing();
  });

  test('reserved opcodes, RSV bits without an extension and unmasked frames close with 1002', async () => {
    const bad = fc.oneof(
      fc.record({ opcode: fc.constantFrom(3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf), rsv: fc.constant(0), mask: fc.constant(true) }),
      fc.record({ opcode: fc.constantFrom(0x1, 0x2, 0x9), rsv: fc.integer({ min: 1, max: 7 }), mask: fc.constant(true) }),
      fc.record({ opcode: fc.constantFrom(0x1, 0x2, 0x9), rsv: fc.constant(0), mask: fc.constant(false) }),
    );
    await fc.assert(
      fc.asyncProperty(bad, fc.uint8Array({ maxLength: 64 }), async ({ opcode, rsv, mask }, bytes) => {
        const o = await exchange([frame(opcode, Buffer.from(bytes), { rsv, mask })]);
        assert.equal(o.closeCode, 1002);
      }),
      { seed: SEED, numRuns: 40 },
    );
    await stillServing();
  });

  test('a command split into any fragments, with pings between, is handled as one message', async () => {
    const command = (id: number): string => JSON.stringify({ op: 'subscribe', channel: `frag.${id}`, id });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1e6 }), fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), async (id, cuts, pings) => {
        const payload = Buffer.from(command(id));
        const points = [...new Set(cuts.map((c) => c % payload.length))].filter((c) => c > 0).sort((a, b) => a - b);
        const pieces = [0, ...points, payload.length].slice(1).map((end, i, ends) => payload.subarray(i === 0 ? 0 : ends[i - 1], end));
        const frames: Buffer[] = [];
        pieces.forEach((piece, i) => {
          frames.push(frame(i === 0 ? 0x1 : 0x0, piece, { fin: i === pieces.length - 1 }));
          if (pings && i < pieces.length - 1) frames.push(frame(0x9, Buffer.from('p')));
        });
        const o = await exchange(frames, (n) => n >= 1);
        assert.equal(o.closeCode, null);
        // A fresh channel: history gives the ack its position, offset 0 in a new epoch.
        const { epoch, ...ack } = o.texts[0]!;
        assert.deepEqual(ack, { op: 'ack', id, offset: 0 });
        assert.ok(isValidEpoch(epoch), `an epoch: ${String(epoch)}`);
      }),
      { seed: SEED, numRuns: 30 },
    );
    await stillServing();
  });

  test('oversized messages close with 1009, whole or in fragments', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: MAX_MESSAGE_BYTES + 1, max: 4 * MAX_MESSAGE_BYTES }), fc.integer({ min: 1, max: 8 }), async (size, parts) => {
        const body = Buffer.alloc(size, 0x61);
        const whole = await exchange([text(body)]);
        assert.equal(whole.closeCode, 1009);
        const step = Math.ceil(size / parts);
        const frames: Buffer[] = [];
        for (let i = 0; i * step < size; i++) {
          frames.push(frame(i === 0 ? 0x1 : 0x0, body.subarray(i * step, (i + 1) * step), { fin: (i + 1) * step >= size }));
        }
        assert.equal((await exchange(frames)).closeCode, 1009);
      }),
      { seed: SEED, numRuns: 15 },
    );
    await stillServing();
  });

  test('deeply nested JSON data: ack or invalid_message, never a crash', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2000 }), fc.constantFrom('[]', '{}'), async (depth, kind) => {
        const nest = kind === '[]' ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
        const o = await exchange([text(`{"op":"publish","channel":"deep","id":1,"data":${nest}}`)], (n) => n >= 1);
        assertDocumented(o);
        const reply = o.texts[0];
        if (o.closeCode === 1009) return; // the nesting itself outgrew MAX_MESSAGE_BYTES
        assert.ok(reply?.op === 'ack' || reply?.code === 'invalid_message', JSON.stringify(reply));
      }),
      { seed: SEED, numRuns: 30 },
    );
    await stillServing();
  });

  test('floods of subscribe ops: at most MAX_CHANNELS_PER_CLIENT held, the rest refused with documented codes', async () => {
    const channel = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,20}$/);
    await fc.assert(
      fc.asyncProperty(fc.array(channel, { minLength: 1, maxLength: 300 }), async (channels) => {
        const frames = channels.map((c, id) => text(JSON.stringify({ op: 'subscribe', channel: c, id })));
        const o = await exchange(frames, (n) => n >= channels.length, 5000);
        assertDocumented(o);
        assert.equal(o.closeCode, null);
        assert.equal(o.texts.length, channels.length, 'every subscribe answered');
        const acked = new Set(o.texts.filter((t) => t.op === 'ack').map((t) => channels[t.id as number]));
        assert.equal(acked.size, Math.min(new Set(channels).size, MAX_CHANNELS));
        for (const t of o.texts) if (t.op === 'error') assert.equal(t.code, 'too_many_channels');
      }),
      { seed: SEED, numRuns: 15 },
    );
    await stillServing();
    // Every fuzz connection has gone, and took its subscriptions with it.
    await waitUntil(async () => (await gateway.metric('hubcast_connections_open')) === 1, { what: 'fuzz connections to close' });
    assert.equal(await gateway.metric('hubcast_subscriptions'), 1);
  });
});

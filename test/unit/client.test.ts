// Client: one write per turn while the socket keeps up, a bounded queue while it does not,
// overflow policies, slow-consumer eviction, and close accounting. The socket is a Writable whose write
// callbacks the test holds, so "the peer is not reading" is exact; timers are mocked, so nothing
// depends on timing.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import type WebSocket from 'ws';
import { Client, type ClientLimits, type ClientOwner } from '../../services/gateway/src/client.js';
import { CloseCode, Disconnect } from '../../services/gateway/src/codes.js';
import { FlushScheduler } from '../../services/gateway/src/flush.js';
import { Stats } from '../../services/gateway/src/stats.js';

const HIGH_WATER_MARK = 1024;

/** A socket that accepts writes but completes none until release() is called. */
class FakeSocket {
  /** Every chunk that reached the underlying write, in order. */
  readonly written: Buffer[] = [];
  private readonly held: (() => void)[] = [];
  readonly stream = new Writable({
    highWaterMark: HIGH_WATER_MARK,
    write: (chunk: Buffer, _encoding, callback) => {
      this.written.push(chunk);
      this.held.push(() => callback());
    },
  });

  /** Completes held writes until none are left (the stream then emits 'drain' synchronously). */
  releaseAll(): void {
    while (this.held.length > 0) this.held.shift()!();
  }

  /** Completes only the oldest held write. */
  releaseOne(): void {
    this.held.shift()?.();
  }

  get needDrain(): boolean {
    return this.stream.writableNeedDrain;
  }

  /** Ping frames (0x89, no payload) handed to the socket, written or still buffered. */
  pings = 0;

  constructor() {
    const write = this.stream.write.bind(this.stream) as (chunk: Buffer) => boolean;
    this.stream.write = ((chunk: Buffer) => {
      if (isPing(chunk)) this.pings++;
      return write(chunk);
    }) as typeof this.stream.write;
  }
}

class FakeWs {
  readyState = 1; // OPEN
  readonly closes: [number, string][] = [];
  terminations = 0;

  close(code: number, reason: string): void {
    this.closes.push([code, reason]);
    this.readyState = 2; // CLOSING: the peer never completes the handshake
  }

  terminate(): void {
    this.terminations++;
    this.readyState = 3; // CLOSED
  }
}

/** A close of the tests' own, so what reaches ws is told apart from every real entry. */
const BYE: Disconnect = { code: CloseCode.Normal, reason: 'bye', counts: null };

/** Records what the client asks; flushes through the real scheduler, whose turn ends when the test says. */
class FakeOwner implements ClientOwner {
  readonly disconnects: [Client, Disconnect][] = [];
  private turnEnd: (() => void) | null = null;
  private readonly flusher = new FlushScheduler<Client>(
    (_client, err) => {
      throw err;
    },
    (run) => {
      this.turnEnd = run;
    },
  );

  /** Clients that asked to be flushed at the end of this turn. */
  get scheduled(): number {
    return this.flusher.size;
  }

  scheduleFlush(client: Client): void {
    this.flusher.schedule(client);
  }

  /** Ends the turn as the hub does: each scheduled client flushed once. */
  endTurn(): void {
    const run = this.turnEnd;
    this.turnEnd = null;
    run?.();
  }

  disconnect(client: Client, disconnect: Disconnect): void {
    this.disconnects.push([client, disconnect]);
  }
}

interface Harness {
  client: Client;
  socket: FakeSocket;
  ws: FakeWs;
  owner: FakeOwner;
  stats: Stats;
}

/** The replay backlog's inputs at their defaults (RECOVERY_MAX_MESSAGES, MAX_MESSAGE_BYTES). */
const PACING = { recoveryMaxMessages: 1000, maxMessageBytes: 64 << 10 };

function setup(limits: Partial<ClientLimits> = {}): Harness {
  const socket = new FakeSocket();
  const ws = new FakeWs();
  const owner = new FakeOwner();
  const stats = new Stats();
  const client = new Client(
    1,
    ws as unknown as WebSocket,
    socket.stream,
    {
      queueMaxMessages: 4,
      queueMaxBytes: 1_000_000,
      overflowPolicy: 'drop-oldest',
      // Long enough never to fire unless a test shortens it; dispose() clears it anyway.
      slowClientEvictMs: 60_000,
      closeTimeoutMs: 60_000,
      ...PACING,
      ...limits,
    },
    stats,
    owner,
  );
  return { client, socket, ws, owner, stats };
}

/** A frame tagged with a sequence number in its first byte. */
function frame(seq: number, size = 100): Buffer {
  return Buffer.alloc(size, seq);
}

const tags = (frames: Buffer[]): number[] => frames.map((f) => f[0]!);
const isPing = (f: Buffer): boolean => f.length === 2 && f[0] === 0x89 && f[1] === 0x00;

/** Fills the socket to its high-water mark, so the next frames must queue. */
function backUp(h: Harness): void {
  h.client.deliver(frame(0xff, HIGH_WATER_MARK));
  h.owner.endTurn();
  assert.equal(h.socket.needDrain, true, 'socket is backed up');
}

describe('Client delivery', () => {
  test('writes the frames of one turn at the end of the turn while the socket keeps up', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 10 });
    for (let i = 1; i <= 5; i++) h.client.deliver(frame(i));
    assert.equal(h.socket.written.length, 0, 'nothing written during the turn');
    assert.equal(h.owner.scheduled, 1, 'scheduled once, not once per frame');
    assert.equal(h.stats.queuedFrames, 5);
    h.owner.endTurn();
    assert.equal(h.socket.needDrain, false);
    assert.equal(h.stats.deliveries, 5);
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.socket.stream.writableLength, 500, 'all five handed to the socket');
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [1, 2, 3, 4, 5]);
    h.client.dispose();
  });

  test('the very same buffer is handed to the socket', { timeout: 5000 }, () => {
    const h = setup();
    const f = frame(1);
    h.client.deliver(f);
    h.owner.endTurn();
    assert.strictEqual(h.socket.written[0], f);
    h.client.dispose();
  });

  test('queues once the socket needs drain', { timeout: 5000 }, () => {
    const h = setup();
    backUp(h);
    assert.equal(h.stats.deliveries, 1);
    h.client.deliver(frame(1, 100));
    h.client.deliver(frame(2, 200));
    h.client.deliver(frame(3, 300));
    assert.equal(h.stats.deliveries, 1, 'nothing more written');
    assert.equal(h.client.queuedFrames, 3);
    assert.equal(h.stats.queuedFrames, 3);
    assert.equal(h.stats.queuedBytes, 600);
    assert.deepEqual(tags(h.socket.written), [0xff]);
    h.client.dispose();
  });

  test('flushes the queue in order on drain and returns stats to zero', { timeout: 5000 }, () => {
    const h = setup();
    backUp(h);
    for (let i = 1; i <= 4; i++) h.client.deliver(frame(i));
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff, 1, 2, 3, 4]);
    assert.equal(h.stats.deliveries, 5);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.stats.queuedBytes, 0);
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.slowClients, 0);
    // Caught up: the next frame goes out at the end of its turn again.
    h.client.deliver(frame(5));
    h.owner.endTurn();
    assert.equal(h.stats.deliveries, 6);
    assert.equal(h.client.queuedFrames, 0);
    h.client.dispose();
  });

  test('a flush stops at the high-water mark and resumes on the next drain', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 10 });
    backUp(h);
    for (let i = 1; i <= 4; i++) h.client.deliver(frame(i, 600));
    // Completing the big write drains the socket; two 600-byte frames refill it past 1024.
    h.socket.releaseOne();
    assert.equal(h.stats.deliveries, 3);
    assert.equal(h.client.queuedFrames, 2);
    assert.equal(h.stats.queuedFrames, 2);
    assert.equal(h.stats.queuedBytes, 1200);
    assert.equal(h.socket.needDrain, true);
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff, 1, 2, 3, 4]);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.stats.deliveries, 5);
    h.client.dispose();
  });

  test('a reading peer takes any number of frames in one turn: no drop, no eviction past the queue bound', { timeout: 5000 }, () => {
    // A socket whose writes complete at once, as the kernel takes data from a peer that reads:
    // writableNeedDrain stays set for the rest of the tick, writableLength does not.
    for (const overflowPolicy of ['drop-oldest', 'evict'] as const) {
      const written: Buffer[] = [];
      const stream = new Writable({
        highWaterMark: HIGH_WATER_MARK,
        write: (chunk: Buffer, _encoding, callback) => {
          written.push(chunk);
          callback();
        },
      });
      const owner = new FakeOwner();
      const stats = new Stats();
      const client = new Client(
        1,
        new FakeWs() as unknown as WebSocket,
        stream,
        { queueMaxMessages: 8, queueMaxBytes: 1_000_000, overflowPolicy, slowClientEvictMs: 60_000, closeTimeoutMs: 60_000, ...PACING },
        stats,
        owner,
      );
      for (let i = 0; i < 100; i++) client.deliver(frame(i, 300));
      owner.endTurn();
      assert.equal(stats.dropped.queue_full + stats.dropped.evicted, 0, overflowPolicy);
      assert.equal(owner.disconnects.length, 0, overflowPolicy);
      assert.equal(stats.deliveries, 100);
      assert.deepEqual(tags(written), Array.from({ length: 100 }, (_, i) => i));
      client.dispose();
    }
  });

  test('queues while the socket needs drain even with an empty queue', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 10 });
    backUp(h);
    h.client.deliver(frame(1, 600));
    h.client.deliver(frame(2, 600));
    h.socket.releaseOne(); // writes 1 and 2, socket full again
    h.client.deliver(frame(3)); // queue is empty but the socket needs drain: must queue
    assert.equal(h.client.queuedFrames, 1);
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff, 1, 2, 3]);
    h.client.dispose();
  });

  test('reply() frames a payload and sends it on the same path', { timeout: 5000 }, () => {
    const h = setup();
    h.client.reply(Buffer.from('{"op":"ack","id":1}'));
    h.owner.endTurn();
    const sent = h.socket.written[0]!;
    assert.equal(sent[0], 0x81);
    assert.equal(sent[1], 19);
    assert.equal(sent.subarray(2).toString(), '{"op":"ack","id":1}');
    assert.equal(h.stats.deliveries, 1);
    h.client.dispose();
  });

  test('deliver to a ws that is not open writes nothing and counts a disconnected drop', { timeout: 5000 }, () => {
    const h = setup();
    h.ws.readyState = 2; // the peer started closing; the hub has not heard 'close' yet
    h.client.deliver(frame(1));
    assert.equal(h.socket.written.length, 0);
    assert.equal(h.stats.deliveries, 0);
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.dropped.disconnected, 1);
    h.client.dispose();
  });
});

describe('Client write coalescing', () => {
  test('all frames of one turn go to the socket in one writev', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 64 });
    const batches: Buffer[][] = [];
    // A socket that implements writev, as net.Socket does: uncork hands it the whole batch.
    const stream = new Writable({
      writev: (chunks, callback) => {
        batches.push(chunks.map((c) => c.chunk as Buffer));
        callback();
      },
    });
    const client = new Client(2, h.ws as unknown as WebSocket, stream, {
      queueMaxMessages: 64, queueMaxBytes: 1_000_000, overflowPolicy: 'drop-oldest', slowClientEvictMs: 60_000, closeTimeoutMs: 60_000, ...PACING,
    }, h.stats, h.owner);
    for (let i = 1; i <= 10; i++) client.deliver(frame(i));
    h.owner.endTurn();
    assert.equal(batches.length, 1, 'one write for the turn');
    assert.deepEqual(tags(batches[0]!), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(h.stats.deliveries, 10);
    assert.equal(h.stats.queuedFrames, 0);
    client.deliver(frame(11));
    h.owner.endTurn();
    assert.equal(batches.length, 2, 'the next turn is a write of its own');
    client.dispose();
  });

  test('more frames in one turn than the queue holds are written, not dropped, while the socket takes them', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 4, overflowPolicy: 'drop-newest' });
    for (let i = 1; i <= 10; i++) h.client.deliver(frame(i));
    h.owner.endTurn();
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(h.stats.dropped.queue_full, 0);
    assert.equal(h.stats.deliveries, 10);
    assert.equal(h.stats.slowClients, 0);
    h.client.dispose();
  });

  test('a backed-up client is not scheduled; its drain flushes it', { timeout: 5000 }, () => {
    const h = setup();
    backUp(h);
    h.client.deliver(frame(1));
    assert.equal(h.owner.scheduled, 0);
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff, 1]);
    h.client.dispose();
  });

  test("a close within the turn writes the turn's frames ahead of the close frame", { timeout: 5000 }, () => {
    const h = setup();
    h.client.deliver(frame(1));
    h.client.deliver(frame(2));
    h.client.close(BYE);
    h.owner.endTurn(); // the scheduled flush finds the client closing and writes nothing more
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [1, 2]);
    assert.deepEqual(h.ws.closes, [[1000, 'bye']]);
    assert.equal(h.stats.deliveries, 2);
    assert.equal(h.stats.dropped.disconnected, 0);
    h.client.dispose();
  });

  test('a close within the turn on a backed-up socket discards and counts what waits', { timeout: 5000 }, () => {
    const h = setup();
    backUp(h);
    h.client.deliver(frame(1));
    h.client.close(BYE);
    h.owner.endTurn();
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff]);
    assert.equal(h.stats.dropped.disconnected, 1);
    h.client.dispose();
  });
});

describe('Client overflow policies', () => {
  test('drop-newest drops the new frame and keeps the old ones', { timeout: 5000 }, () => {
    const h = setup({ overflowPolicy: 'drop-newest', queueMaxMessages: 2 });
    backUp(h);
    h.client.deliver(frame(1));
    h.client.deliver(frame(2));
    h.client.deliver(frame(3));
    h.client.deliver(frame(4));
    assert.equal(h.stats.dropped.queue_full, 2);
    assert.equal(h.client.queuedFrames, 2);
    assert.equal(h.stats.queuedFrames, 2);
    assert.equal(h.stats.queuedBytes, 200);
    assert.equal(h.stats.slowClients, 1);
    assert.equal(h.owner.disconnects.length, 0);
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff, 1, 2]);
    assert.equal(h.stats.slowClients, 0, 'caught up');
    h.client.dispose();
  });

  test('drop-oldest drops the oldest and keeps the newest', { timeout: 5000 }, () => {
    const h = setup({ overflowPolicy: 'drop-oldest', queueMaxMessages: 2 });
    backUp(h);
    for (let i = 1; i <= 5; i++) h.client.deliver(frame(i));
    assert.equal(h.stats.dropped.queue_full, 3);
    assert.equal(h.client.queuedFrames, 2);
    assert.equal(h.stats.queuedFrames, 2);
    assert.equal(h.stats.queuedBytes, 200);
    assert.equal(h.stats.slowClients, 1);
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff, 4, 5]);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.stats.slowClients, 0);
    h.client.dispose();
  });

  test('drop-oldest under the byte bound drops as many old frames as needed', { timeout: 5000 }, () => {
    const h = setup({ overflowPolicy: 'drop-oldest', queueMaxMessages: 100, queueMaxBytes: 1000 });
    backUp(h);
    h.client.deliver(frame(1, 300));
    h.client.deliver(frame(2, 300));
    h.client.deliver(frame(3, 300));
    h.client.deliver(frame(4, 700)); // needs 1 and 2 gone (300 + 700 = 1000)
    assert.equal(h.stats.dropped.queue_full, 2);
    assert.equal(h.stats.queuedBytes, 1000);
    assert.equal(h.stats.queuedFrames, 2);
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff, 3, 4]);
    h.client.dispose();
  });

  test('drop-oldest drops a frame too big for any queue and keeps the queue', { timeout: 5000 }, () => {
    const h = setup({ overflowPolicy: 'drop-oldest', queueMaxMessages: 10, queueMaxBytes: 500 });
    backUp(h);
    h.client.deliver(frame(1, 200));
    h.client.deliver(frame(2, 501));
    assert.equal(h.stats.dropped.queue_full, 1);
    assert.equal(h.client.queuedFrames, 1);
    assert.equal(h.stats.queuedBytes, 200);
    h.client.dispose();
  });

  test('evict asks the owner to disconnect with QueueOverflow and counts the frame', { timeout: 5000 }, () => {
    const h = setup({ overflowPolicy: 'evict', queueMaxMessages: 2 });
    backUp(h);
    h.client.deliver(frame(1));
    h.client.deliver(frame(2));
    assert.equal(h.owner.disconnects.length, 0);
    h.client.deliver(frame(3));
    assert.equal(h.owner.disconnects.length, 1);
    assert.strictEqual(h.owner.disconnects[0]![0], h.client);
    assert.equal(h.owner.disconnects[0]![1], Disconnect.QueueOverflow);
    assert.equal(h.stats.dropped.evicted, 1);
    assert.equal(h.stats.dropped.queue_full, 0);
    assert.equal(h.stats.slowClients, 0, 'no slow-consumer grace under evict');
    h.client.dispose();
  });
});

describe('Client after the peer closes', () => {
  test('queued frames are never written after ws has sent its close frame; they count as disconnected', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 10 });
    backUp(h);
    for (let i = 1; i <= 3; i++) h.client.deliver(frame(i));
    assert.equal(h.client.queuedFrames, 3);
    h.ws.readyState = 2; // the peer sent a close frame and ws answered it
    const writtenBefore = h.socket.written.length;
    h.socket.releaseAll(); // drain
    assert.equal(h.socket.written.length, writtenBefore, 'nothing after the close frame');
    assert.equal(h.stats.dropped.disconnected, 3);
    assert.equal(h.stats.queuedFrames, 0);
    h.client.deliver(frame(4));
    assert.equal(h.stats.dropped.disconnected, 4);
    h.client.dispose();
    assert.equal(h.stats.dropped.disconnected, 4, 'not counted twice');
  });
});

describe('Client pong', () => {
  test('answers a ping with a pong frame through the bounded path', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 1, overflowPolicy: 'drop-newest' });
    h.client.pong(Buffer.from('hi'));
    h.owner.endTurn();
    assert.deepEqual([...h.socket.written[0]!], [0x8a, 2, 0x68, 0x69]);
    backUp(h);
    h.client.pong(Buffer.from('a')); // queued
    h.client.pong(Buffer.from('b')); // over the bound: dropped and counted like any frame
    assert.equal(h.client.queuedFrames, 1);
    assert.equal(h.stats.dropped.queue_full, 1);
    h.client.dispose();
  });
});

describe('Client slow-consumer eviction', () => {
  test('a frame too big for any queue, dropped while the queue is empty, is forgiven at the next drain', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ overflowPolicy: 'drop-oldest', queueMaxBytes: 500, slowClientEvictMs: 50 });
    backUp(h);
    h.client.deliver(frame(1, 501)); // dropped; the queue stays empty, but the client is behind
    assert.equal(h.stats.dropped.queue_full, 1);
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.slowClients, 1);
    h.socket.releaseAll(); // the socket drains with nothing queued: caught up
    assert.equal(h.stats.slowClients, 0);
    t.mock.timers.tick(100);
    assert.equal(h.owner.disconnects.length, 0, 'a client that caught up is not evicted');
    h.client.dispose();
  });

  test('a client that stays behind is evicted after slowClientEvictMs', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ overflowPolicy: 'drop-newest', queueMaxMessages: 1, slowClientEvictMs: 50 });
    backUp(h);
    h.client.deliver(frame(1));
    h.client.deliver(frame(2)); // overflows: the timer starts
    assert.equal(h.stats.slowClients, 1);
    t.mock.timers.tick(30);
    h.client.deliver(frame(3)); // still behind: no second timer, and the first keeps its deadline
    assert.equal(h.stats.slowClients, 1);
    t.mock.timers.tick(19);
    assert.equal(h.owner.disconnects.length, 0, 'not before 50 ms');
    t.mock.timers.tick(1);
    assert.equal(h.owner.disconnects.length, 1);
    assert.strictEqual(h.owner.disconnects[0]![0], h.client);
    assert.equal(h.owner.disconnects[0]![1], Disconnect.SlowConsumer);
    assert.equal(h.stats.slowClients, 0);
    h.client.dispose();
  });

  test('a client that catches up before the deadline is not evicted', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ overflowPolicy: 'drop-oldest', queueMaxMessages: 2, slowClientEvictMs: 50 });
    backUp(h);
    for (let i = 1; i <= 4; i++) h.client.deliver(frame(i));
    assert.equal(h.stats.slowClients, 1);
    h.socket.releaseAll(); // drain empties the queue
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.slowClients, 0);
    t.mock.timers.tick(120); // well past the deadline
    assert.equal(h.owner.disconnects.length, 0);
    assert.equal(h.stats.slowClients, 0);
    h.client.dispose();
  });

  test('a partial flush does not clear the slow state', { timeout: 5000 }, () => {
    const h = setup({ overflowPolicy: 'drop-oldest', queueMaxMessages: 3 });
    backUp(h);
    for (let i = 1; i <= 4; i++) h.client.deliver(frame(i, 600));
    assert.equal(h.stats.slowClients, 1);
    h.socket.releaseOne(); // two frames go out, one stays queued
    assert.equal(h.client.queuedFrames, 1);
    assert.equal(h.stats.slowClients, 1, 'still behind');
    h.socket.releaseAll();
    assert.equal(h.stats.slowClients, 0);
    h.client.dispose();
  });
});

describe('Client eviction and close', () => {
  test('closing with SlowConsumer sends 1013, discards the queue as evicted, terminates after closeTimeoutMs', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ closeTimeoutMs: 30 });
    backUp(h);
    for (let i = 1; i <= 3; i++) h.client.deliver(frame(i));
    h.client.close(Disconnect.SlowConsumer);
    assert.deepEqual(h.ws.closes, [[1013, 'slow consumer']]);
    assert.equal(h.ws.terminations, 0, 'not at once: the peer gets closeTimeoutMs');
    assert.equal(h.client.isClosing, true);
    assert.equal(h.stats.dropped.evicted, 3);
    assert.equal(h.stats.dropped.disconnected, 0);
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.stats.queuedBytes, 0);
    t.mock.timers.tick(29);
    assert.equal(h.ws.terminations, 0, 'not before closeTimeoutMs');
    t.mock.timers.tick(1);
    assert.equal(h.ws.terminations, 1);
    // The queue was discarded: a drain writes nothing more.
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [0xff]);
    h.client.dispose();
    assert.equal(h.stats.dropped.disconnected, 0, 'nothing left to count at dispose');
  });

  test('QueueOverflow also closes with 1013', { timeout: 5000 }, () => {
    const h = setup();
    h.client.close(Disconnect.QueueOverflow);
    assert.deepEqual(h.ws.closes, [[1013, 'slow consumer']]);
    h.client.dispose();
  });

  test('dispose before closeTimeoutMs cancels the terminate', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ closeTimeoutMs: 20 });
    h.client.close(Disconnect.SlowConsumer);
    h.client.dispose(); // the peer completed the close
    t.mock.timers.tick(60);
    assert.equal(h.ws.terminations, 0);
  });

  test('HeartbeatTimeout terminates at once', { timeout: 5000 }, () => {
    const h = setup();
    backUp(h);
    h.client.deliver(frame(1));
    h.client.deliver(frame(2));
    h.client.close(Disconnect.HeartbeatTimeout);
    assert.equal(h.ws.terminations, 1);
    assert.deepEqual(h.ws.closes, [], 'no close handshake with a dead peer');
    assert.equal(h.stats.dropped.evicted, 2);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.client.isClosing, true);
    h.client.dispose();
    assert.equal(h.stats.dropped.disconnected, 0);
  });

  test('eviction clears the slow state', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 1 });
    backUp(h);
    h.client.deliver(frame(1));
    h.client.deliver(frame(2));
    assert.equal(h.stats.slowClients, 1);
    h.client.close(Disconnect.SlowConsumer);
    assert.equal(h.stats.slowClients, 0);
    h.client.dispose();
  });

  test('close() then dispose() counts leftover frames once, as disconnected', { timeout: 5000 }, () => {
    const h = setup();
    backUp(h);
    h.client.deliver(frame(1));
    h.client.deliver(frame(2));
    h.client.close(BYE);
    assert.deepEqual(h.ws.closes, [[1000, 'bye']]);
    assert.equal(h.stats.dropped.disconnected, 2);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.stats.queuedBytes, 0);
    h.client.dispose();
    assert.equal(h.stats.dropped.disconnected, 2, 'not counted twice');
    assert.equal(h.stats.dropped.evicted, 0);
  });

  test('dispose() alone counts leftover frames as disconnected', { timeout: 5000 }, () => {
    const h = setup();
    backUp(h);
    h.client.deliver(frame(1));
    h.client.dispose();
    assert.equal(h.stats.dropped.disconnected, 1);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.client.isClosing, true);
  });

  test('a second close() is a no-op', { timeout: 5000 }, () => {
    const h = setup();
    h.client.close(Disconnect.Shutdown);
    h.client.close(BYE);
    assert.deepEqual(h.ws.closes, [[1001, 'server shutting down']]);
    h.client.dispose();
  });

  test('close() on a ws already closed sends nothing and arms no terminate', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ closeTimeoutMs: 10 });
    h.ws.readyState = 3;
    h.client.close(BYE);
    assert.deepEqual(h.ws.closes, []);
    assert.equal(h.client.isClosing, true);
    t.mock.timers.tick(40);
    assert.equal(h.ws.terminations, 0);
    h.client.dispose();
  });

  test('close() while the peer is closing sends no close frame but terminates after closeTimeoutMs', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ closeTimeoutMs: 20 });
    h.ws.readyState = 2; // the peer's close frame arrived; its handshake may never finish
    h.client.close(Disconnect.Shutdown);
    assert.deepEqual(h.ws.closes, [], 'a close frame was already exchanged');
    assert.equal(h.ws.terminations, 0);
    t.mock.timers.tick(20);
    assert.equal(h.ws.terminations, 1);
    h.client.dispose();
  });

  test('deliver after close writes and queues nothing, counting a disconnected drop', { timeout: 5000 }, () => {
    const h = setup();
    h.client.close(BYE);
    assert.equal(h.stats.dropped.disconnected, 0, 'the queue was empty');
    h.ws.readyState = 1; // even if the ws still claimed to be open
    h.client.deliver(frame(1));
    assert.equal(h.socket.written.length, 0);
    assert.equal(h.stats.deliveries, 0);
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.stats.dropped.disconnected, 1);
    h.client.dispose();
    assert.equal(h.stats.dropped.disconnected, 1);
  });

  test('dispose stops listening for drain', { timeout: 5000 }, () => {
    const h = setup();
    assert.equal(h.socket.stream.listenerCount('drain'), 1);
    h.client.dispose();
    assert.equal(h.socket.stream.listenerCount('drain'), 0);
  });
});

describe('Client heartbeat', () => {
  test('pings while the peer answers; false, with no ping, once it has sent nothing since the last', { timeout: 5000 }, () => {
    const h = setup();
    assert.equal(h.client.heartbeat(), true);
    assert.equal(h.socket.pings, 1);
    h.client.markAlive(); // a pong, a ping or a message
    assert.equal(h.client.heartbeat(), true);
    assert.equal(h.socket.pings, 2);
    assert.equal(h.client.heartbeat(), false, 'nothing since the previous ping');
    assert.equal(h.socket.pings, 2, 'a dead peer is not pinged again');
    h.client.dispose();
  });

  test('the ping is one two-byte frame on the socket, and none follows a close frame', { timeout: 5000 }, () => {
    const h = setup();
    h.client.heartbeat();
    assert.deepEqual(h.socket.written, [Buffer.from([0x89, 0x00])]);
    h.ws.readyState = 2; // CLOSING: the peer sent its close frame, and ws answered it
    h.client.markAlive();
    assert.equal(h.client.heartbeat(), true, 'still alive until the close completes');
    assert.equal(h.socket.pings, 1, 'no ping after the close frame');
    h.client.dispose();
  });

  test('a heartbeat keeps what is queued', { timeout: 5000 }, () => {
    const h = setup();
    backUp(h);
    h.client.deliver(frame(1));
    assert.equal(h.client.heartbeat(), true);
    assert.equal(h.client.queuedFrames, 1, 'only an empty queue gives up its buffer');
    h.socket.releaseAll();
    // The ping goes to the socket at once, as ws.ping() wrote it; the data frames are as before.
    assert.deepEqual(tags(h.socket.written.filter((f) => !isPing(f))), [0xff, 1]);
    assert.equal(h.socket.pings, 1);
    h.client.dispose();
  });
});

describe('Client pending commands', () => {
  test('counts commands started and settled', { timeout: 5000 }, () => {
    const h = setup();
    assert.equal(h.client.pendingCommands, 0);
    h.client.commandStarted();
    h.client.commandStarted();
    assert.equal(h.client.pendingCommands, 2);
    h.client.commandSettled();
    assert.equal(h.client.pendingCommands, 1);
    h.client.dispose();
  });
});

describe('Client flush scheduling', () => {
  test('scheduled once per turn, and again in the next turn once flushed', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 10 });
    h.client.deliver(frame(1));
    h.client.deliver(frame(2));
    assert.equal(h.owner.scheduled, 1);
    h.owner.endTurn();
    assert.equal(h.owner.scheduled, 0);
    h.client.deliver(frame(3));
    assert.equal(h.owner.scheduled, 1, 'the flush cleared the mark');
    h.owner.endTurn();
    h.socket.releaseAll();
    assert.deepEqual(tags(h.socket.written), [1, 2, 3]);
    h.client.dispose();
  });
});

describe('Client replay pacing (a recovery replay larger than the send queue)', () => {
  /** A frame carrying a sequence number in its first two bytes, so a thousand can be told apart. */
  function seqFrame(seq: number, size = 100): Buffer {
    const buf = Buffer.alloc(size);
    buf.writeUInt16BE(seq, 0);
    return buf;
  }
  const seqs = (frames: Buffer[]): number[] => frames.map((f) => f.readUInt16BE(0));
  const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const dropped = (stats: Stats): number => Object.values(stats.dropped).reduce((a, b) => a + b, 0);

  /** The peer reads: completes held writes until the socket holds none (each drain flushes more). */
  function readAll(h: Harness): void {
    for (let rounds = 0; rounds < 10_000 && (h.socket.stream.writableLength > 0 || h.client.queuedFrames > 0); rounds++) {
      h.owner.endTurn();
      h.socket.releaseAll();
    }
  }

  for (const overflowPolicy of ['drop-oldest', 'drop-newest', 'evict'] as const) {
    test(`a reading client gets all 1000 replayed frames in order, then the live ones, nothing dropped (${overflowPolicy})`, { timeout: 10_000 }, (t) => {
      t.mock.timers.enable({ apis: ['setTimeout'] });
      const h = setup({ queueMaxMessages: 256, overflowPolicy, slowClientEvictMs: 50 });
      t.after(() => h.client.dispose());
      h.client.replay(range(1, 1000).map((i) => seqFrame(i)));
      // Live frames of the same turn, and of later turns while the replay is still going out.
      for (let i = 1001; i <= 1010; i++) h.client.deliver(seqFrame(i));
      assert.equal(h.client.queuedFrames + h.stats.deliveries, 1010, 'nothing cut in the turn the replay was handed over');
      assert.ok(h.client.queuedFrames > 256, 'more than the queue holds waits behind it');
      h.owner.endTurn();
      h.socket.releaseOne();
      for (let i = 1011; i <= 1020; i++) h.client.deliver(seqFrame(i));
      readAll(h);
      assert.deepEqual(seqs(h.socket.written), range(1, 1020));
      assert.equal(dropped(h.stats), 0);
      assert.equal(h.stats.deliveries, 1020);
      assert.equal(h.stats.queuedFrames, 0);
      assert.equal(h.stats.queuedBytes, 0);
      assert.equal(h.client.queuedFrames, 0);
      t.mock.timers.tick(1000);
      assert.deepEqual(h.owner.disconnects, [], 'a client that caught up is not evicted');
      assert.equal(h.stats.slowClients, 0);
      // Caught up: the next frame goes out at the end of its own turn, no backlog left.
      h.client.deliver(seqFrame(1021));
      h.owner.endTurn();
      assert.equal(h.stats.deliveries, 1021);
    });
  }

  test('a replay that fits the queue goes out at the end of the turn like any frames', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 256 });
    h.client.replay(range(1, 5).map((i) => seqFrame(i)));
    h.client.deliver(seqFrame(6));
    assert.equal(h.owner.scheduled, 1);
    h.owner.endTurn();
    h.socket.releaseAll();
    assert.deepEqual(seqs(h.socket.written), range(1, 6));
    assert.equal(dropped(h.stats), 0);
    h.client.dispose();
  });

  test('a client that stops reading holds a bounded backlog, drops past it are counted, and it is evicted', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ queueMaxMessages: 256, overflowPolicy: 'drop-oldest', slowClientEvictMs: 50, recoveryMaxMessages: 1000 });
    t.after(() => h.client.dispose());
    h.client.replay(range(1, 1000).map((i) => seqFrame(i)));
    h.owner.endTurn();
    assert.equal(dropped(h.stats), 0, 'the replay itself is kept');
    // The peer never reads: live frames pile up behind the replay until the backlog's bound.
    for (let i = 1001; i <= 3000; i++) h.client.deliver(seqFrame(i));
    h.owner.endTurn();
    const held = h.client.queuedFrames;
    assert.ok(held <= 256 + 1000 + 256, `bounded: ${held} frames held`);
    assert.equal(h.stats.queuedFrames, held);
    assert.equal(h.stats.dropped.queue_full, 3000 - held - h.stats.deliveries, 'every frame not held nor written is counted');
    assert.ok(h.stats.dropped.queue_full > 0);
    assert.equal(h.stats.slowClients, 1);
    t.mock.timers.tick(49);
    assert.deepEqual(h.owner.disconnects, []);
    t.mock.timers.tick(1);
    assert.equal(h.owner.disconnects.length, 1);
    assert.equal(h.owner.disconnects[0]![1], Disconnect.SlowConsumer);
    const queuedFull = h.stats.dropped.queue_full;
    h.client.close(Disconnect.SlowConsumer);
    assert.equal(h.stats.dropped.evicted, held, 'queue and backlog are discarded as evicted');
    assert.equal(h.stats.dropped.queue_full, queuedFull);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.stats.queuedBytes, 0);
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.deliveries + dropped(h.stats), 3000, 'every frame written or counted');
  });

  test('a client with a replay backlog that never reads is evicted even without live traffic', { timeout: 5000 }, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = setup({ queueMaxMessages: 256, slowClientEvictMs: 50 });
    t.after(() => h.client.dispose());
    h.client.replay(range(1, 1000).map((i) => seqFrame(i)));
    h.owner.endTurn();
    assert.equal(h.stats.slowClients, 1, 'more than a queue behind a socket that takes nothing');
    t.mock.timers.tick(50);
    assert.equal(h.owner.disconnects.length, 1);
    assert.equal(h.owner.disconnects[0]![1], Disconnect.SlowConsumer);
  });

  test('under evict, a backlog past its bound evicts the client', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 4, overflowPolicy: 'evict', recoveryMaxMessages: 10 });
    h.client.replay(range(1, 10).map((i) => seqFrame(i)));
    h.owner.endTurn();
    for (let i = 11; i <= 14; i++) h.client.deliver(seqFrame(i));
    assert.deepEqual(h.owner.disconnects, [], 'within the bound: a replay of RECOVERY_MAX_MESSAGES and a queue more');
    for (let i = 15; i <= 40; i++) h.client.deliver(seqFrame(i));
    assert.ok(h.owner.disconnects.length >= 1);
    assert.equal(h.owner.disconnects[0]![1], Disconnect.QueueOverflow);
    assert.ok(h.stats.dropped.evicted > 0);
    h.client.dispose();
  });

  test('the backlog also bounds bytes', { timeout: 5000 }, () => {
    // 10 messages of at most 1000 bytes: the backlog holds about 10 kB past a 2 kB queue.
    const h = setup({ queueMaxMessages: 1000, queueMaxBytes: 2000, overflowPolicy: 'drop-newest', recoveryMaxMessages: 10, maxMessageBytes: 1000 });
    h.client.replay(range(1, 10).map((i) => seqFrame(i, 1000)));
    h.owner.endTurn();
    assert.equal(dropped(h.stats), 0);
    for (let i = 11; i <= 100; i++) h.client.deliver(seqFrame(i, 1000));
    assert.ok(h.stats.queuedBytes <= 2000 + 10 * (1000 + 256) + 2000, `bounded: ${h.stats.queuedBytes} bytes held`);
    assert.ok(h.stats.dropped.queue_full > 0);
    assert.equal(h.stats.deliveries + h.client.queuedFrames + h.stats.dropped.queue_full, 100);
    h.client.dispose();
  });

  test('dispose counts the backlog as disconnected drops; a replay after close is counted too', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 4 });
    h.client.replay(range(1, 20).map((i) => seqFrame(i)));
    h.owner.endTurn();
    const held = h.client.queuedFrames;
    assert.ok(held > 4);
    h.client.dispose();
    assert.equal(h.stats.dropped.disconnected, held);
    assert.equal(h.stats.queuedFrames, 0);
    assert.equal(h.stats.queuedBytes, 0);
    h.client.replay(range(21, 25).map((i) => seqFrame(i)));
    assert.equal(h.stats.dropped.disconnected, held + 5);
    assert.equal(h.stats.deliveries + held + 5, 25);
  });

  test('a peer that closed meanwhile: the next flush discards the backlog as disconnected, writing none of it', { timeout: 5000 }, () => {
    const h = setup({ queueMaxMessages: 4 });
    h.client.replay(range(1, 20).map((i) => seqFrame(i)));
    h.owner.endTurn();
    const delivered = h.stats.deliveries;
    const held = h.client.queuedFrames;
    h.ws.readyState = 2; // CLOSING: ws sent its close frame
    h.socket.releaseAll(); // the drain's flush
    assert.equal(h.stats.deliveries, delivered, 'nothing more handed to the socket');
    assert.equal(h.socket.written.length, delivered, 'only what it already held reached the peer');
    assert.equal(h.stats.dropped.disconnected, held);
    assert.equal(h.client.queuedFrames, 0);
    assert.equal(h.stats.queuedFrames, 0);
    h.client.dispose();
  });
});

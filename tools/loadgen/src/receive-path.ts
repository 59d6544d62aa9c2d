// A gateway's receive path in one process, for profiling (issue 13): positioned bus messages
// decoded as RedisBus.onMessage decodes them (the position header, then gap repair), broadcast by
// the hub to real Client objects whose sockets take and discard every write. No Redis and no
// network, so a CPU profile of it holds only the gateway's own work per message, from the bus
// message to the subscribers' queues and their per-turn writes.
//
//   node dist/tools/loadgen/src/receive-path.js [--channels=2000] [--per-channel=3] [--messages=300000] [--turn=30] [--profile=FILE]
//
// Messages arrive `turn` at a time (as several replies come in one socket read), then the turn
// ends so the flush runs. Prints CPU µs per message and per delivery, without and with the
// fanout histogram (the gateway's metrics, as it runs). --profile writes a CPU profile (.cpuprofile,
// as node --cpu-prof does) of the second run's receive loop only, not of making its messages.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import type { Bus } from '../../../services/gateway/src/bus/bus.js';
import { GapRepair } from '../../../services/gateway/src/bus/position-repair.js';
import { EpochSource, hasPosition, readPositioned, writePositioned } from '../../../services/gateway/src/bus/position.js';
import { Client, type ClientLimits } from '../../../services/gateway/src/client.js';
import { Hub } from '../../../services/gateway/src/hub.js';
import { createMetrics } from '../../../services/gateway/src/metrics.js';
import { encodeMessage } from '../../../services/gateway/src/protocol.js';
import { Stats } from '../../../services/gateway/src/stats.js';
import { makePayload } from './payload.js';

const { values } = parseArgs({
  options: { channels: { type: 'string' }, 'per-channel': { type: 'string' }, messages: { type: 'string' }, turn: { type: 'string' }, profile: { type: 'string' } },
});
const CHANNELS = Number(values.channels ?? 2000);
const PER_CHANNEL = Number(values['per-channel'] ?? 3);
const MESSAGES = Number(values.messages ?? 300_000);
const TURN = Number(values.turn ?? 30);
const PREFIX = 'hubcast:';

/** The gateway's defaults (config.ts). */
const LIMITS: ClientLimits = {
  queueMaxMessages: 256,
  queueMaxBytes: 1 << 20,
  overflowPolicy: 'drop-oldest',
  slowClientEvictMs: 5000,
  closeTimeoutMs: 3000,
  recoveryMaxMessages: 1000,
  maxMessageBytes: 64 << 10,
};

/** The hub asks the bus only to subscribe and unsubscribe here. */
const bus = { subscribe: () => undefined, unsubscribe: () => undefined } as unknown as Bus;

/** A socket that takes every write at once. */
const sink = (): Writable =>
  new Writable({
    write: (_chunk, _encoding, done) => done(),
    writev: (_chunks, done) => done(),
  });

/** What Client reads of its WebSocket on the receive path. */
const openWs = { readyState: WebSocket.OPEN, ping: () => undefined, close: () => undefined, terminate: () => undefined } as unknown as WebSocket;

async function run(withHistogram: boolean, profile: string | undefined): Promise<{ perMessage: number; perDelivery: number; deliveries: number }> {
  const stats = new Stats();
  const metrics = createMetrics({ stats, busKind: 'redis', isReady: () => true, channelCount: () => CHANNELS, subscriptionCount: () => CHANNELS * PER_CHANNEL });
  const hub = new Hub(bus, stats, { maxChannelsPerClient: 100, observeFanout: withHistogram ? metrics.observeFanout : undefined });
  const repair = new GapRepair(
    {
      deliver: (channel, m) => hub.broadcast(channel, m.bytes, m),
      lost: (channel, position) => hub.lost(channel, position),
      repair: () => {
        throw new Error('no gaps in this harness');
      },
    },
    stats,
  );
  const epochs = new EpochSource();
  const names: string[] = [];
  const redisNames: Buffer[] = [];
  const epochOf: string[] = [];
  let id = 0;
  for (let c = 0; c < CHANNELS; c++) {
    const name = `room.${c}`;
    names.push(name);
    redisNames.push(Buffer.from(PREFIX + name, 'latin1'));
    epochOf.push(epochs.next());
    repair.watch(name, { offset: 0, epoch: epochOf[c]! });
    for (let k = 0; k < PER_CHANNEL; k++) {
      const client = new Client(id++, openWs, sink(), LIMITS, stats, hub);
      hub.register(client);
      hub.subscribe(client, name);
    }
  }
  // Every message as Redis would deliver it, made before the clock starts.
  const payload = makePayload(1, 0, 64);
  const messages: Buffer[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const c = i % CHANNELS;
    messages.push(writePositioned(encodeMessage(names[c]!, payload), Math.floor(i / CHANNELS) + 1, epochOf[c]!));
  }
  // RedisBus.onMessage, less what only a live Redis needs (the probe, the envelope).
  const onMessage = (redisChannel: Buffer, message: Buffer): void => {
    const channel = redisChannel.toString('latin1', PREFIX.length, redisChannel.length);
    if (hasPosition(message)) repair.accept(channel, readPositioned(message));
  };
  const session = profile === undefined ? null : new Session();
  if (session !== null) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const start = process.cpuUsage();
  for (let i = 0; i < MESSAGES; ) {
    for (const end = Math.min(MESSAGES, i + TURN); i < end; i++) onMessage(redisNames[i % CHANNELS]!, messages[i]!);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setImmediate(resolve));
  const used = process.cpuUsage(start);
  const micros = used.user + used.system;
  if (session !== null) {
    const { profile: taken } = await session.post('Profiler.stop');
    writeFileSync(profile!, JSON.stringify(taken));
    session.disconnect();
  }
  if (stats.busGaps + stats.busDuplicates > 0) throw new Error('the harness made a gap or a duplicate');
  return { perMessage: micros / MESSAGES, perDelivery: micros / stats.deliveries, deliveries: stats.deliveries };
}

const print = (line: string): boolean => process.stdout.write(`${line}\n`);
print(`receive path: ${CHANNELS} channels × ${PER_CHANNEL} clients, ${MESSAGES} messages, ${TURN} per turn; node ${process.version}`);
for (const withHistogram of [false, true]) {
  const r = await run(withHistogram, withHistogram ? values.profile : undefined);
  if (r.deliveries !== MESSAGES * PER_CHANNEL) throw new Error(`${r.deliveries} deliveries, ${MESSAGES * PER_CHANNEL} expected`);
  print(`${withHistogram ? 'with' : 'without'} the fanout histogram: ${r.perMessage.toFixed(2)} µs CPU per message, ${r.perDelivery.toFixed(2)} µs per delivery`);
}

// Writes a turn's publishes (publish-batch.ts) to one Redis as one command and settles them: the
// I/O shell around the batch core. With history on the command is the history batch script
// (history-redis.ts); with history off, PUBLISH_MANY_LUA.
import type { Cluster, Redis } from 'ioredis';
import { BusUnavailableError } from './bus.js';
import type { BatchWriter, PublishBatch } from './publish-batch.js';

/** Error messages of a failed publish: certainly not sent, or sent but not confirmed. */
export const NOT_SENT = 'the message bus is unavailable; the message was not sent';
export const UNCONFIRMED = 'Redis did not confirm the message; it may still be delivered';

/** The one error every entry of a batch gets when Redis took the command but did not answer it in time. */
export function unconfirmedError(err: Error): BusUnavailableError {
  return new BusUnavailableError(`${UNCONFIRMED} (${err.message})`, true);
}

/** Sends one batch as one command; resolves once Redis answered it. */
export type SendBatch = (batch: PublishBatch) => Promise<unknown>;

export class RedisBatchWriter implements BatchWriter {
  /** writable: the connection can take a command now (false: the batch fails as certainly not sent). */
  constructor(
    private readonly send: SendBatch,
    private readonly writable: () => boolean,
  ) {}

  write(batch: PublishBatch): void {
    if (!this.writable()) {
      batch.settle(new BusUnavailableError(NOT_SENT));
      return;
    }
    // From here every message of the batch is spent: part of a script may have run when the
    // reply is lost, so all are told "may still be delivered" (a loss then shows as a gap).
    this.send(batch).then(
      () => batch.settle(null),
      (err: Error) => batch.settle(unconfirmedError(err)),
    );
  }
}

/**
 * Redis Cluster: a batch cut into runs of one slot (a script call's keys and shard channels must
 * share one), each written as one command; publish order holds on each master.
 */
export class SlotRunsWriter implements BatchWriter {
  constructor(
    private readonly slotOf: (channel: string) => number,
    private readonly perRun: BatchWriter,
  ) {}

  write(batch: PublishBatch): void {
    for (const run of batch.runsBy(this.slotOf)) this.perRun.write(run);
  }
}

/**
 * KEYS channel1, channel2 ...; ARGV publish command, then message1, message2 ...: each PUBLISHed
 * (SPUBLISHed on Redis Cluster) in order (history off). The channels are keys so that on a
 * Cluster the call goes to their slot's master (all of one slot: see redis-cluster.ts).
 */
export const PUBLISH_MANY_LUA = `
for i = 1, #KEYS do
  redis.call(ARGV[1], KEYS[i], ARGV[i + 1])
end
return #KEYS
`;

const PUBLISH_MANY_COMMAND = 'hubcastPublishMany';

interface PublishMany {
  hubcastPublishMany(keyCount: number, ...args: (string | Buffer)[]): Promise<number>;
}

/**
 * History off: a batch's enveloped messages as one script call; the batch's channels are the
 * Redis channel names. A message alone goes as the plain command: on Redis Cluster most runs of
 * one slot hold one, and there a script call cost more than SPUBLISH (tools/loadgen/src/bus-batch.ts).
 */
export function publishManyScript(redis: Redis | Cluster, command: 'PUBLISH' | 'SPUBLISH'): SendBatch {
  redis.defineCommand(PUBLISH_MANY_COMMAND, { lua: PUBLISH_MANY_LUA });
  const scripted = redis as unknown as PublishMany;
  return (batch) => {
    const n = batch.length;
    if (n === 1) return command === 'SPUBLISH' ? redis.spublish(batch.channels[0]!, batch.messages[0]!) : redis.publish(batch.channels[0]!, batch.messages[0]!);
    const args: (string | Buffer)[] = new Array(2 * n + 1);
    args[n] = command;
    for (let i = 0; i < n; i++) {
      args[i] = batch.channels[i]!;
      args[n + 1 + i] = batch.messages[i]!;
    }
    return scripted.hubcastPublishMany(n, ...args);
  };
}

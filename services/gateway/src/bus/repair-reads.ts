// What both Redis buses (redis.ts, redis-cluster.ts) do for gap repair and its log: a repair read
// from history handed back to GapRepair, and the once-a-second totals line.
import type { Logger } from 'pino';
import { HistoryReadPurpose } from '../codes.js';
import type { HistoryRead } from './history-read.js';
import type { HistoryReads } from './history-reads.js';
import type { GapRepair } from './position-repair.js';

/** Reads offsets after..to of epoch for repair id; the reply (or the failure) goes back to repair in a later turn. */
export function readForRepair(
  history: HistoryReads,
  repair: GapRepair,
  log: Logger,
  channel: string,
  id: number,
  epoch: string,
  after: number,
  to: number,
): void {
  history.since(channel, after, epoch, to - after, HistoryReadPurpose.Repair).then(
    (read: HistoryRead) => repair.repaired(channel, id, read),
    (err: Error) => {
      log.warn({ err: err.message, channel, after, to }, 'history read for gap repair failed; the gap is reported lost');
      repair.repairFailed(channel, id);
    },
  );
}

/** Gaps are counted on the hot path; this logs their totals when they moved (called once a second). */
export class GapLog {
  private logged = 0;

  tick(counts: { readonly busGaps: number; readonly busDuplicates: number }, log: Logger): void {
    const { busGaps, busDuplicates } = counts;
    const seen = busGaps + busDuplicates;
    if (seen === this.logged) return;
    this.logged = seen;
    log.warn({ gaps: busGaps, duplicates: busDuplicates }, 'bus messages missing or repeated (totals)');
  }
}

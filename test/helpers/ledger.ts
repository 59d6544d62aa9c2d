// The fault suite's accounting: for every accepted publish and every client that stayed connected,
// the delivery was made (seen by the client), dropped (the gateway's drop counter), or lost on the
// bus (the gateway's gap counter). What none of these explains is unaccounted, and must be 0.
//
// Gaps count bus messages, not deliveries: a message a gateway never got is missed by each of its
// clients on that channel, so it explains one missed delivery per such client. A publish Redis did
// not confirm ('unconfirmed') had its sequence number spent: it may arrive, and where it does not,
// it is a gap too, so those losses (known here from what the clients saw) are taken out first.
// With history on (messages carry an offset) an unconfirmed publish is one atomic script: it ran,
// and its message is delivered or repaired like any other, or it did not, and spent no offset. So
// there its non-arrival is no gap, and nothing is taken out.
//
// With history on, a loss history cannot fill (a Redis restarted without persistence took the
// last messages of an epoch with it) reaches the client as a `lost` frame: its size is unknowable
// to the gateway, but the client is told. A missing delivery counts as told when the same client
// got a `lost` frame on that channel between that publisher's messages before and after it. A gap
// the gateway counted and told is one loss: see explainLosses.
import type { ServerFrame, TestClient } from './client.js';
import type { GatewayProcess } from './gateway.js';
import type { LoadPublisher, Sent } from './load.js';

export interface GatewayView {
  readonly name: string;
  readonly gateway: GatewayProcess;
  /** Clients that stayed connected, each subscribed to every channel the publishers used. */
  readonly clients: readonly TestClient[];
}

export interface Figures {
  accepted: number;
  rejected: number;
  unconfirmed: number;
  noReply: number;
  expected: number;
  delivered: number;
  dropped: number;
  gaps: number;
  gapDeliveries: number;
  /** Missing deliveries a `lost` frame told the client about (history on). */
  lostTold: number;
  duplicates: number;
  unaccounted: number;
  /** Unconfirmed publishes that did arrive (per gateway; summed over gateways in the total). */
  unconfirmedArrived: number;
}

export interface Ledger {
  readonly total: Figures;
  readonly perGateway: Record<string, Figures>;
  /** Anything a correct gateway never does: a duplicate, a refused message delivered, a stranger. */
  readonly problems: string[];
}

function zero(): Figures {
  return {
    accepted: 0,
    rejected: 0,
    unconfirmed: 0,
    noReply: 0,
    expected: 0,
    delivered: 0,
    dropped: 0,
    gaps: 0,
    gapDeliveries: 0,
    lostTold: 0,
    duplicates: 0,
    unaccounted: 0,
    unconfirmedArrived: 0,
  };
}

/**
 * Missing accepted deliveries to this client that a `lost` frame on their channel covers: one that
 * arrived after the publisher's previous delivered message and before its next one.
 */
export function toldByLost(client: { readonly frames: readonly ServerFrame[] }, accepted: readonly Sent[], seen: ReadonlySet<string>): number {
  // Per channel and publisher, the frame index of each delivered message number; per channel, the
  // frame indexes of lost frames.
  const delivered = new Map<string, Map<number, number>>();
  const lost = new Map<string, number[]>();
  client.frames.forEach((frame, i) => {
    if (frame.channel === undefined) return;
    if (frame.op === 'lost') (lost.get(frame.channel) ?? lost.set(frame.channel, []).get(frame.channel)!).push(i);
    if (frame.op !== 'message') return;
    const data = frame.data as { p?: string; n?: number } | undefined;
    if (data?.p === undefined || data.n === undefined) return;
    const key = `${frame.channel}:${data.p}`;
    (delivered.get(key) ?? delivered.set(key, new Map()).get(key)!).set(data.n, i);
  });
  let told = 0;
  for (const s of accepted) {
    if (seen.has(s.key)) continue;
    const notices = lost.get(s.channel);
    if (notices === undefined) continue;
    const cut = s.key.lastIndexOf(':');
    const p = s.key.slice(0, cut);
    const n = Number(s.key.slice(cut + 1));
    const mine = delivered.get(`${s.channel}:${p}`);
    let before = -1;
    let after = Number.POSITIVE_INFINITY;
    for (const [m, i] of mine ?? []) {
      if (m < n && i > before) before = i;
      if (m > n && i < after) after = i;
    }
    if (notices.some((i) => i > before && i < after)) told++;
  }
  return told;
}

/**
 * The deliveries a gateway's gap counter explains beyond those `lost` frames told. With history on,
 * a gap history could not fill is counted (hubcast_bus_gaps_total, one per missing message) and
 * told to each local client by a `lost` frame: the same loss, which must not explain a delivery
 * twice. So the counter explains one missed delivery per client and gap message, less the
 * deliveries already told; with history off there are no `lost` frames and nothing is taken off.
 */
export function explainLosses(clients: number, gaps: number, lostTold: number): { gapDeliveries: number } {
  return { gapDeliveries: Math.max(0, clients * gaps - lostTold) };
}

function sum(metrics: Map<string, number>, name: string): number {
  let total = 0;
  for (const [series, value] of metrics) if (series === name || series.startsWith(`${name}{`)) total += value;
  return total;
}

export async function account(publishers: readonly LoadPublisher[], views: readonly GatewayView[]): Promise<Ledger> {
  const all = new Map<string, Sent>();
  for (const p of publishers) for (const s of p.sent.values()) all.set(s.key, s);
  const byFate = (fate: Sent['fate']): Sent[] => [...all.values()].filter((s) => s.fate === fate);
  const accepted = byFate('accepted');
  const unconfirmed = byFate('unconfirmed');
  const problems: string[] = [];
  const total = zero();
  total.accepted = accepted.length;
  total.rejected = byFate('not_sent').length + unconfirmed.length;
  total.unconfirmed = unconfirmed.length;
  total.noReply = byFate('no_reply').length;
  const perGateway: Record<string, Figures> = {};

  for (const view of views) {
    const f = zero();
    const busReceived = new Set<string>();
    for (const [i, client] of view.clients.entries()) {
      const seen = new Set<string>();
      for (const frame of client.messages()) {
        const data = frame.data as { p?: string; n?: number } | undefined;
        const key = `${data?.p}:${data?.n}`;
        const sent = all.get(key);
        if (sent === undefined) problems.push(`${view.name} client ${i} got a message nobody sent: ${key}`);
        else if (sent.fate === 'not_sent') problems.push(`${view.name} client ${i} got ${key}, refused as not sent`);
        else if (sent.channel !== frame.channel) problems.push(`${view.name} client ${i} got ${key} on ${frame.channel}`);
        if (seen.has(key)) problems.push(`${view.name} client ${i} got ${key} twice`);
        seen.add(key);
        busReceived.add(key);
      }
      for (const s of accepted) if (seen.has(s.key)) f.delivered++;
      f.lostTold += toldByLost(client, accepted, seen);
    }
    const metrics = await view.gateway.metrics();
    const n = view.clients.length;
    const positioned = view.clients.some((c) => c.messages().some((m) => m.offset !== undefined));
    f.accepted = accepted.length;
    f.expected = accepted.length * n;
    f.dropped = sum(metrics, 'hubcast_messages_dropped_total');
    f.gaps = metrics.get('hubcast_bus_gaps_total') ?? Number.NaN;
    f.duplicates = metrics.get('hubcast_bus_duplicates_total') ?? Number.NaN;
    f.unconfirmedArrived = unconfirmed.filter((s) => busReceived.has(s.key)).length;
    const unconfirmedLost = positioned ? 0 : unconfirmed.length - f.unconfirmedArrived;
    const explained = explainLosses(n, f.gaps - unconfirmedLost, f.lostTold);
    f.gapDeliveries = explained.gapDeliveries;
    f.unaccounted = f.expected - f.delivered - f.dropped - f.gapDeliveries - f.lostTold;
    perGateway[view.name] = f;
    for (const k of ['expected', 'delivered', 'dropped', 'gaps', 'gapDeliveries', 'lostTold', 'duplicates', 'unaccounted', 'unconfirmedArrived'] as const) {
      total[k] += f[k];
    }
  }
  return { total, perGateway, problems };
}

/** One line of figures for the test's output. */
export function figures(scenario: string, ledger: Ledger): string {
  const t = ledger.total;
  return (
    `${scenario}: publishes accepted=${t.accepted} rejected=${t.rejected} (unconfirmed=${t.unconfirmed}) no_reply=${t.noReply}; ` +
    `deliveries expected=${t.expected} delivered=${t.delivered} dropped=${t.dropped} ` +
    `lost_on_bus=${t.gapDeliveries} (bus gaps=${t.gaps}) lost_told=${t.lostTold} duplicates=${t.duplicates} unaccounted=${t.unaccounted}`
  );
}

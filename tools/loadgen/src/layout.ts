// Where each benchmark connection goes: which server it opens on and which channel it subscribes
// to, and how many deliveries one publish makes. Pure, so the scenarios' arithmetic (one room
// member per gateway, every channel the same size, every connection placed once) has unit tests.
import type { ConnectTarget } from './ipc.js';

/** The channel of the broadcast scenarios: every connection subscribes to it. */
export const BROADCAST_CHANNEL = 'bench';

export interface Placement {
  readonly server: number;
  readonly channel: string;
}

export interface Layout {
  readonly connections: number;
  /** Publish number s goes to channels[s % channels.length]. */
  readonly channels: readonly string[];
  /** Deliveries one publish makes: every channel has this many members. */
  readonly fanout: number;
  place(connection: number): Placement;
}

/** Every connection on one channel, round-robin over the servers. */
export function broadcastLayout(connections: number, servers: number): Layout {
  return {
    connections,
    channels: [BROADCAST_CHANNEL],
    fanout: connections,
    place: (j) => ({ server: j % servers, channel: BROADCAST_CHANNEL }),
  };
}

/**
 * Channels of `perChannel` members each: connection j is member j % perChannel of channel
 * floor(j / perChannel), on server j % servers. With perChannel equal to the servers, each channel
 * has one member on every server (a chat room spread over the gateways); with perChannel 1, each
 * connection has a channel of its own.
 */
export function roomsLayout(connections: number, perChannel: number, servers: number): Layout {
  if (connections % perChannel !== 0) throw new Error(`${connections} connections do not make channels of ${perChannel}`);
  const channels = Array.from({ length: connections / perChannel }, (_, k) => `c${k}`);
  return {
    connections,
    channels,
    fanout: perChannel,
    place: (j) => ({ server: j % servers, channel: channels[Math.floor(j / perChannel)]! }),
  };
}

/**
 * The connections split over load processes in contiguous ranges (so a room's members share a
 * process whenever the split falls between rooms, as at every size the bench uses), each process's share as (url, count) entries, one per distinct URL, so a broadcast
 * layout stays one entry per server however many connections.
 */
export function spread(layout: Layout, processes: number, urlOf: (p: Placement) => string): ConnectTarget[][] {
  const out: ConnectTarget[][] = Array.from({ length: processes }, () => []);
  const perUrl = Array.from({ length: processes }, () => new Map<string, number>());
  for (let j = 0; j < layout.connections; j++) {
    const p = Math.floor((j * processes) / layout.connections);
    const url = urlOf(layout.place(j));
    perUrl[p]!.set(url, (perUrl[p]!.get(url) ?? 0) + 1);
  }
  for (let p = 0; p < processes; p++) for (const [url, count] of perUrl[p]!) out[p]!.push({ url, count });
  return out;
}

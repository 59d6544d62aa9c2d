// The benchmark's pure parts: where each connection goes (layout.ts), how the connections split
// over load processes, and how the table judges the targets and what a run left behind (report.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BROADCAST_CHANNEL, broadcastLayout, type Layout, roomsLayout, spread } from '../../tools/loadgen/src/layout.js';
import type { ChurnFigures } from '../../tools/loadgen/src/churn.js';
import { buildRows, formatTable, leftovers } from '../../tools/loadgen/src/report.js';
import type { Measurement } from '../../tools/loadgen/src/rig.js';
import type { ScenarioResult, Sizes } from '../../tools/loadgen/src/scenarios.js';
import type { TargetName } from '../../tools/loadgen/src/targets.js';

function members(layout: Layout): Map<string, number[]> {
  const byChannel = new Map<string, number[]>();
  for (let j = 0; j < layout.connections; j++) {
    const { server, channel } = layout.place(j);
    byChannel.set(channel, [...(byChannel.get(channel) ?? []), server]);
  }
  return byChannel;
}

describe('bench layouts', () => {
  test('(f) rooms: every channel has one member on each gateway', () => {
    const layout = roomsLayout(6000, 3, 3);
    assert.equal(layout.channels.length, 2000);
    assert.equal(layout.fanout, 3);
    const byChannel = members(layout);
    assert.deepEqual([...byChannel.keys()].sort(), [...layout.channels].sort());
    for (const servers of byChannel.values()) assert.deepEqual([...servers].sort(), [0, 1, 2]);
  });

  test('(g) sparse: a channel per connection, the connections balanced over the servers', () => {
    const layout = roomsLayout(3000, 1, 3);
    assert.equal(layout.fanout, 1);
    const byChannel = members(layout);
    assert.equal(byChannel.size, 3000);
    const perServer = [0, 0, 0];
    for (const servers of byChannel.values()) {
      assert.equal(servers.length, 1);
      perServer[servers[0]!]!++;
    }
    assert.deepEqual(perServer, [1000, 1000, 1000]);
  });

  test('the ceiling (one server) holds every member; uneven channels are refused', () => {
    for (const servers of members(roomsLayout(30, 3, 1)).values()) assert.deepEqual(servers, [0, 0, 0]);
    assert.throws(() => roomsLayout(10, 3, 3), /channels of 3/);
  });

  test('broadcast: one channel, round-robin, every connection a delivery', () => {
    const layout = broadcastLayout(10, 3);
    assert.deepEqual(layout.channels, [BROADCAST_CHANNEL]);
    assert.equal(layout.fanout, 10);
    assert.deepEqual(
      Array.from({ length: 10 }, (_, j) => layout.place(j).server),
      [0, 1, 2, 0, 1, 2, 0, 1, 2, 0],
    );
  });

  test('spread places every connection exactly once, rooms whole, broadcast as one entry per server', () => {
    const rooms = roomsLayout(600, 3, 3);
    const urlOf = (p: { server: number; channel: string }): string => `s${p.server}/${p.channel}`;
    const shares = spread(rooms, 4, urlOf);
    const placed = shares.flat();
    assert.equal(placed.reduce((a, t) => a + t.count, 0), 600);
    const expected = Array.from({ length: 600 }, (_, j) => urlOf(rooms.place(j))).sort();
    assert.deepEqual(placed.flatMap((t) => Array<string>(t.count).fill(t.url)).sort(), expected);
    // A room's three members land in one process.
    for (const channel of rooms.channels) {
      const holders = shares.filter((share) => share.some((t) => t.url.endsWith(`/${channel}`)));
      assert.equal(holders.length, 1, channel);
    }

    // (i): 100,000 over 6 servers and 8 processes: 12,500 per process, at most 6 entries each.
    const big = spread(broadcastLayout(100_000, 6), 8, urlOf);
    for (const share of big) {
      assert.ok(share.length <= 6);
      assert.equal(share.reduce((a, t) => a + t.count, 0), 12_500);
    }
  });
});

const FLOW = { subscribers: 0, rate: 1, durationMs: 1, size: 64 };
const SIZES: Sizes = {
  a: FLOW,
  b: FLOW,
  c: { connections: 1 },
  d: { subscribers: 1, startRate: 1, factor: 2, steps: 1, durationMs: 1, p99Ms: 50 },
  e: { ...FLOW, processes: 1 },
  f: { ...FLOW, subscribers: 6000, perChannel: 3 },
  g: { ...FLOW, subscribers: 3000, perChannel: 1 },
  h: { connections: 20_000, batch: 200, processes: 2, settleMs: 0 },
  i: { ...FLOW, subscribers: 100_000, gateways: 6, processes: 8, settleMs: 0 },
  gateways: 3,
  subscriberProcesses: 2,
};

function flow(scenario: 'b' | 'f' | 'i', target: TargetName, cpu: number, p99: number, extra: Partial<ScenarioResult> = {}): ScenarioResult {
  const m: Measurement = {
    subscribers: 100,
    rate: 1,
    sent: 10,
    expected: 1000,
    received: 1000,
    dropped: 0,
    lost: 0,
    busMessages: null,
    busReconnects: null,
    publishesRejected: 0,
    silent: 0,
    open: 100,
    closed: 0,
    deliveriesPerSecond: 1000,
    latencyMs: { p50: 1, p99, p999: p99, max: p99 },
    cpuMicrosPerDelivery: cpu,
    gatewayCpuMicrosPerDelivery: cpu,
    loadCpuCores: 0,
    machineBusy: 0,
  };
  return { scenario, target, servers: 3, measurement: m, ...extra };
}

/** The verdict cell of the table row whose figure is `figure`. */
function verdict(table: string, scenario: string, figure: string): string {
  const line = table.split('\n').find((l) => l.startsWith(`| ${scenario}`) && l.includes(`| ${figure} |`));
  assert.ok(line, `no row ${scenario} / ${figure}`);
  return line.split(' | ').at(-1)!.replace(/ \|$/, '');
}

describe('bench report', () => {
  test('(f) is judged against 1.5× the ceiling, 0.5× Socket.IO and 25 ms', () => {
    const f = '(f) rooms';
    const table = formatTable(buildRows([flow('f', 'hubcast', 1.4, 20), flow('f', 'socketio', 3, 30), flow('f', 'ws', 1, 5)], SIZES));
    assert.equal(verdict(table, f, 'target: CPU/delivery ≤ 1.5× ceiling'), 'met (1.40×)');
    assert.equal(verdict(table, f, 'target: CPU/delivery ≤ 0.5× Socket.IO'), 'met (0.47×)');
    assert.equal(verdict(table, f, 'target: p99 ≤ 25 ms'), 'met (20.00 ms)');
    const missed = formatTable(buildRows([flow('f', 'hubcast', 1.6, 26), flow('f', 'socketio', 3, 30), flow('f', 'ws', 1, 5)], SIZES));
    assert.equal(verdict(missed, f, 'target: CPU/delivery ≤ 1.5× ceiling'), 'MISSED (1.60×)');
    assert.equal(verdict(missed, f, 'target: CPU/delivery ≤ 0.5× Socket.IO'), 'MISSED (0.53×)');
    assert.equal(verdict(missed, f, 'target: p99 ≤ 25 ms'), 'MISSED (26.00 ms)');
    // Without the ceiling's figure the ratio cannot be judged.
    const alone = formatTable(buildRows([flow('f', 'hubcast', 1.4, 20)], SIZES));
    assert.equal(verdict(alone, f, 'target: CPU/delivery ≤ 1.5× ceiling'), 'n/a (NaN×)');
  });

  test('(b) keeps its targets: 1.15× the ceiling and p99 at most 0.1× Socket.IO, shown to 3 digits', () => {
    const table = formatTable(buildRows([flow('b', 'hubcast', 1.2, 9), flow('b', 'socketio', 3, 100), flow('b', 'ws', 1, 5)], SIZES));
    assert.equal(verdict(table, '(b)', 'target: CPU/delivery ≤ 1.15× ceiling'), 'MISSED (1.20×)');
    assert.equal(verdict(table, '(b)', 'target: p99 ≤ 0.1× Socket.IO'), 'met (0.090×)');
  });

  test('(i) is judged on every connection receiving and 9 KiB per connection', () => {
    const hub = flow('i', 'hubcast', 5, 100, { rssPerConnection: 8 * 1024, connections: 100_000 });
    const table = formatTable(buildRows([hub], SIZES));
    assert.equal(verdict(table, '(i)', 'target: ≤ 9 KiB RSS per connection'), 'met (8.00 KiB)');
    assert.equal(verdict(table, '(i)', 'target: every connection open and receiving'), 'met (100 open, 0 silent, 0 lost)');
    const silent = formatTable(buildRows([{ ...hub, measurement: { ...hub.measurement!, silent: 1 } }], SIZES));
    assert.equal(verdict(silent, '(i)', 'target: every connection open and receiving'), 'MISSED (100 open, 1 silent, 0 lost)');
  });

  test('(h) churn: whatever is left behind is a missed target and a leftover', () => {
    const clean: ChurnFigures = {
      connections: 20_000,
      connectsPerSecond: 1000,
      cpuMicrosPerConnection: 100,
      rssBytes: { before: 100 << 20, mid: 110 << 20, after: 110 << 20 },
      channelsLeft: 0,
      subscribersLeft: 0,
      connectionsAfter: 0,
    };
    const result = (target: TargetName, churn: ChurnFigures): ScenarioResult => ({ scenario: 'h', target, servers: 3, churn });
    const ok = formatTable(buildRows([result('hubcast', clean)], SIZES));
    assert.equal(verdict(ok, '(h)', 'target: no Redis subscription left behind'), 'met (0 channels, 0 subscribers)');
    assert.equal(verdict(ok, '(h)', 'target: connection gauge back to zero'), 'met (0 open)');
    assert.equal(verdict(ok, '(h)', 'target: RSS growth bounded (second half ≤ 1 KiB per connection)'), 'met (0.000 KiB)');
    assert.deepEqual(leftovers([result('hubcast', clean), result('ws', { ...clean, channelsLeft: null, subscribersLeft: null })]), []);

    // 10,000 connections in the second half that kept 5 KiB each, and a channel still subscribed.
    const leaky = { ...clean, rssBytes: { ...clean.rssBytes, after: clean.rssBytes.mid + 10_000 * 5 * 1024 }, channelsLeft: 1, subscribersLeft: 1, connectionsAfter: 2 };
    const bad = formatTable(buildRows([result('hubcast', leaky)], SIZES));
    assert.equal(verdict(bad, '(h)', 'target: no Redis subscription left behind'), 'MISSED (1 channels, 1 subscribers)');
    assert.equal(verdict(bad, '(h)', 'target: connection gauge back to zero'), 'MISSED (2 open)');
    assert.equal(verdict(bad, '(h)', 'target: RSS growth bounded (second half ≤ 1 KiB per connection)'), 'MISSED (5.000 KiB)');
    assert.deepEqual(leftovers([result('hubcast', leaky)]), ['(h) hubcast: 1 Redis channels, 1 Redis subscribers, 2 connections left behind']);
  });
});

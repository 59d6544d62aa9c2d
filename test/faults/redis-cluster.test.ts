// Faults on Redis Cluster (issue 12), each under steady load through three gateways on a local
// six-node cluster, channels spread over all three shards, every client on every channel:
// - a master SIGKILLed: delivery resumes within 10 s; every client receives, in order, every
//   message the promoted replica holds; what asynchronous replication lost is counted;
// - a graceful CLUSTER FAILOVER: delivery resumes within 2 s and nothing is lost; clients that were
//   away recover with `since` on another gateway, across shards;
// - a slot with live channels moved to another master (SETSLOT IMPORTING/MIGRATING, MIGRATE,
//   SETSLOT NODE): its subscriptions follow it, and nothing is lost without a `lost` frame.
// Each prints its figures. One cluster for the file; each scenario has its own key prefix.
import assert from 'node:assert/strict';
import { type TestContext, after, before, describe, test } from 'node:test';
import { Cluster } from 'ioredis';
import { historyKeys } from '../../services/gateway/src/bus/history-redis.js';
import { keySlot } from '../../services/gateway/src/bus/shards.js';
import { type NodeRole, type RedisCluster, startRedisCluster } from '../../tools/kit/src/redis-cluster.js';
import { type ServerFrame, TestClient } from '../helpers/client.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';
import { LoadPublisher } from '../helpers/load.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

interface Member {
  readonly name: string;
  readonly gateway: GatewayProcess;
  readonly clients: TestClient[];
  readonly publisher: LoadPublisher;
}

interface World {
  readonly prefix: string;
  /** Hub channel → the master serving its slot at the start. */
  readonly channels: Map<string, NodeRole>;
  readonly members: Member[];
}

/** What one client saw on one channel, checked frame by frame (messages and lost frames). */
interface ChannelCheck {
  /** Offsets out of order, repeated, or skipped without a lost frame. */
  readonly violations: string[];
  /** "epoch:offset" of every message received. */
  readonly received: Set<string>;
  /** Per epoch, the highest offset a lost frame covered. */
  readonly lostUpTo: Map<string, number>;
  readonly lostFrames: number;
}

function check(frames: readonly ServerFrame[], channel: string): ChannelCheck {
  const violations: string[] = [];
  const received = new Set<string>();
  const lostUpTo = new Map<string, number>();
  let epoch: string | null = null;
  let last = 0;
  let lostFrames = 0;
  for (const f of frames) {
    if (f.channel !== channel) continue;
    if (f.op === 'lost') {
      lostFrames++;
      epoch = f.epoch!;
      last = f.offset!;
      lostUpTo.set(epoch, Math.max(lostUpTo.get(epoch) ?? 0, last));
    } else if (f.op === 'message') {
      const key = `${f.epoch}:${f.offset}`;
      if (epoch !== null && (f.epoch !== epoch || f.offset !== last + 1)) {
        violations.push(`${channel}: ${key} after ${epoch}:${last}`);
      }
      received.add(key);
      epoch = f.epoch!;
      last = f.offset!;
    }
  }
  return { violations, received, lostUpTo, lostFrames };
}

/** A message's name as the load publisher made it: "g1:17". */
const keyOf = (data: unknown): string => {
  const d = data as { p: string; n: number };
  return `${d.p}:${d.n}`;
};

describe('fault: Redis Cluster failovers and slot moves under load', { timeout: 150_000 }, () => {
  let rc: RedisCluster;
  let reader: Cluster;
  const cleanup: (() => unknown)[] = [];

  before(async () => {
    rc = await startRedisCluster();
    reader = new Cluster([...rc.seeds]);
    reader.on('error', () => undefined); // a master is killed below; this client only reads after
  });
  after(async () => {
    for (const c of cleanup.reverse()) await c();
    reader?.disconnect();
    await rc?.stop();
  });

  async function masters(): Promise<NodeRole[]> {
    return (await rc.roles()).filter((r) => r.role === 'master' && !r.failed && r.slots.length > 0);
  }
  const owns = (m: NodeRole, slot: number): boolean => m.slots.some(([a, b]) => slot >= a && slot <= b);

  /** Three gateways, two channels per master, three clients per gateway on every channel, one publisher each (every 20 ms). */
  async function world(t: TestContext): Promise<World> {
    const prefix = uniquePrefix();
    const channels = new Map<string, NodeRole>();
    for (const m of await masters()) {
      for (let i = 0, found = 0; found < 2; i++) {
        const channel = `load.${m.port}.${i}`;
        if (!owns(m, keySlot(`${prefix}{${channel}}`))) continue;
        channels.set(channel, m);
        found++;
      }
    }
    const env = { REDIS_CLUSTER_NODES: rc.seedList, REDIS_PREFIX: prefix, BUS_PROBE_INTERVAL_MS: '500', HISTORY_SIZE: '10000' };
    const gateways = await Promise.all(['g1', 'g2', 'g3'].map(() => startGateway(env)));
    cleanup.push(() => Promise.all(gateways.map((g) => g.kill())));
    await Promise.all(gateways.map((g) => g.waitReady(200, 20_000)));
    const members: Member[] = [];
    for (const [i, gateway] of gateways.entries()) {
      const clients: TestClient[] = [];
      for (let c = 0; c < 3; c++) clients.push(await TestClient.connect(gateway.ws([...channels.keys()])));
      const publisher = await LoadPublisher.connect(`g${i + 1}`, gateway.ws());
      cleanup.push(() => {
        publisher.close();
        for (const c of clients) c.close();
      });
      members.push({ name: `g${i + 1}`, gateway, clients, publisher });
    }
    await Promise.all(gateways.map((g) => g.waitReady(200, 20_000)));
    for (const m of members) m.publisher.start([...channels.keys()], 20);
    t.after(() => {
      for (const m of members) m.publisher.stop();
    });
    return { prefix, channels, members };
  }

  /** Resolves once every client received `more` messages on each of `channels` beyond what it has now. */
  async function flowing(w: World, channels: readonly string[], more: number, timeoutMs = 20_000): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const m of w.members) {
      for (const c of m.clients) {
        for (const channel of channels) {
          const target = c.messages(channel).length + more;
          waits.push(c.waitForCount(() => c.messages(channel).length, target, timeoutMs, `${more} more on ${channel} at ${m.name}`));
        }
      }
    }
    await Promise.all(waits);
  }

  /** ms from `from` until every client has a message on one of channels published after `from` (its id beyond the publisher's at `from`). */
  async function resumed(w: World, channels: readonly string[], from: number, timeoutMs: number): Promise<number> {
    const mark = new Map(w.members.map((m) => [m.name, Math.max(0, ...m.publisher.sent.keys())]));
    const wanted = new Set(channels);
    await Promise.all(
      w.members.flatMap((m) =>
        m.clients.map((c) =>
          c.waitFor((f) => {
            if (f.op !== 'message' || !wanted.has(f.channel!)) return false;
            const d = f.data as { p: string; n: number };
            return d.n > mark.get(d.p)!;
          }, timeoutMs, `delivery back on ${channels.join(', ')} at ${m.name}`),
        ),
      ),
    );
    return Date.now() - from;
  }

  /** Stops the load, waits for every publish's fate, then one more message per publisher and channel reaches everyone. */
  async function settle(w: World): Promise<void> {
    for (const m of w.members) m.publisher.stop();
    await Promise.all(w.members.map((m) => m.publisher.settled(20_000)));
    const last: string[] = [];
    for (const m of w.members) {
      for (const channel of w.channels.keys()) {
        const sent = await m.publisher.publishAndWait(channel);
        assert.equal(sent.fate, 'accepted', `the closing publish ${sent.key} on a healthy cluster`);
        last.push(sent.key);
      }
    }
    for (const m of w.members) {
      for (const c of m.clients) {
        for (const key of last) await c.waitFor((f) => f.op === 'message' && keyOf(f.data) === key, 15_000, `${key} at ${m.name}`);
      }
    }
  }

  /** Each channel's history now: its epoch and the message names its stream holds, by offset. */
  async function histories(w: World): Promise<Map<string, { epoch: string; entries: Map<number, string> }>> {
    const out = new Map<string, { epoch: string; entries: Map<number, string> }>();
    for (const channel of w.channels.keys()) {
      const { meta, stream } = historyKeys(w.prefix, channel);
      const epoch = (await reader.hget(meta, 'e'))!;
      const entries = new Map<number, string>();
      for (const [id, fields] of await reader.xrange(stream, '-', '+')) {
        const frame = JSON.parse(fields[1]!) as { data: unknown };
        entries.set(Number(id.split('-')[0]), keyOf(frame.data));
      }
      out.set(channel, { epoch, entries });
    }
    return out;
  }

  interface Outcome {
    violations: string[];
    /** Stream entries (final epoch) a client neither received nor was told were lost. */
    missing: number;
    /** Stream entries covered by a lost frame instead of delivered. */
    coveredByLost: number;
    lostFrames: number;
    accepted: number;
    /** Publishes acked by Redis whose message no stream holds now (asynchronous replication lost them). */
    ackedNotInHistory: number;
    /** Accepted publishes some client did not receive. */
    undelivered: number;
    rewound: number;
    repaired: number;
  }

  async function outcome(w: World): Promise<Outcome> {
    const hist = await histories(w);
    const stored = new Set<string>();
    for (const h of hist.values()) for (const k of h.entries.values()) stored.add(k);
    const o: Outcome = { violations: [], missing: 0, coveredByLost: 0, lostFrames: 0, accepted: 0, ackedNotInHistory: 0, undelivered: 0, rewound: 0, repaired: 0 };
    const accepted: string[] = [];
    for (const m of w.members) for (const s of m.publisher.sent.values()) if (s.fate === 'accepted') accepted.push(s.key);
    o.accepted = accepted.length;
    o.ackedNotInHistory = accepted.filter((k) => !stored.has(k)).length;
    for (const m of w.members) {
      for (const c of m.clients) {
        const got = new Set(c.messages().map((f) => keyOf(f.data)));
        o.undelivered += accepted.filter((k) => !got.has(k)).length;
        for (const [channel, h] of hist) {
          const r = check(c.frames, channel);
          o.violations.push(...r.violations.map((v) => `${m.name}: ${v}`));
          o.lostFrames += r.lostFrames;
          for (const offset of h.entries.keys()) {
            if (r.received.has(`${h.epoch}:${offset}`)) continue;
            if ((r.lostUpTo.get(h.epoch) ?? 0) >= offset) o.coveredByLost++;
            else o.missing++;
          }
        }
      }
      o.rewound += await m.gateway.metric('hubcast_bus_rewound_total');
      o.repaired += await m.gateway.metric('hubcast_bus_gaps_repaired_total');
    }
    return o;
  }

  const figures = (name: string, resumeMs: number, o: Outcome): string =>
    `${name}: delivery resumed after ${resumeMs} ms; accepted=${o.accepted} acked_not_in_history=${o.ackedNotInHistory} ` +
    `rewound=${o.rewound} lost_frames=${o.lostFrames} repaired=${o.repaired} missing=${o.missing} covered_by_lost=${o.coveredByLost} ` +
    `undelivered=${o.undelivered} order_violations=${o.violations.length}`;

  test('a master SIGKILLed: delivery back within 10 s, every message the promoted replica holds delivered in order, replication losses counted', async (t) => {
    const w = await world(t);
    const [victim] = await masters();
    const onVictim = [...w.channels].filter(([, m]) => m.port === victim!.port).map(([c]) => c);
    await flowing(w, [...w.channels.keys()], 10);
    const killedAt = Date.now();
    await rc.kill(victim!.port);
    cleanup.push(async () => {
      if (!rc.nodes.find((n) => n.port === victim!.port)!.running) await rc.restart(victim!.port);
    });
    const resumeMs = await resumed(w, onVictim, killedAt, 10_000);
    await rc.waitHealthy(30_000);
    await flowing(w, onVictim, 10);
    await settle(w);
    const o = await outcome(w);
    t.diagnostic(figures('SIGKILL of a master', resumeMs, o));
    assert.ok(resumeMs < 10_000, `delivery resumed within 10 s (${resumeMs} ms)`);
    assert.deepEqual(o.violations, [], 'in order, each offset once, nothing skipped without a lost frame');
    assert.equal(o.missing, 0, 'every message the promoted replica holds reached every client (or a lost frame said so)');
    assert.ok(o.rewound >= 0 && o.ackedNotInHistory >= 0);
    // Back as a replica of the promoted one, so the next scenario has three full shards again.
    await rc.restart(victim!.port);
    await rc.waitHealthy(30_000);
  });

  test('a graceful CLUSTER FAILOVER: delivery back within 2 s and nothing lost; clients away recover with since on another gateway', async (t) => {
    const w = await world(t);
    const roles = await rc.roles();
    const victim = (await masters()).find((m) => roles.some((r) => r.masterId === m.id && !r.failed));
    const replica = roles.find((r) => r.masterId === victim!.id && !r.failed)!;
    const onVictim = [...w.channels].filter(([, m]) => m.port === victim!.port).map(([c]) => c);
    await flowing(w, [...w.channels.keys()], 10);

    // One client per gateway leaves before the failover and comes back after it on the next gateway.
    const away = w.members.map((m) => m.clients.pop()!);
    const positions = away.map((c) => new Map([...w.channels.keys()].map((ch) => {
      const last = c.messages(ch).at(-1)!;
      return [ch, { offset: last.offset!, epoch: last.epoch! }];
    })));
    for (const c of away) c.close();

    const failedOverAt = Date.now();
    await rc.command(replica.port, 'CLUSTER', 'FAILOVER');
    const resumeMs = await resumed(w, onVictim, failedOverAt, 10_000);
    await waitUntil(async () => (await rc.masterOf(keySlot(`${w.prefix}{${onVictim[0]}}`))).port === replica.port, { timeoutMs: 10_000, what: 'the replica promoted' });
    await flowing(w, onVictim, 10);

    const returning: TestClient[] = [];
    for (const [i, position] of positions.entries()) {
      const next = w.members[(i + 1) % w.members.length]!;
      const c = await TestClient.connect(next.gateway.ws());
      cleanup.push(() => c.close());
      for (const [channel, since] of position) {
        const ack = await c.request({ op: 'subscribe', channel, since });
        assert.equal(ack.recovered, true, `recovered on ${channel} through ${next.name}`);
      }
      returning.push(c);
    }
    await settle(w);
    const o = await outcome(w);
    let recoveryViolations = 0;
    for (const [i, c] of returning.entries()) {
      for (const [channel, since] of positions[i]!) {
        const got = c.messages(channel).map((f) => f.offset!);
        const expected = Array.from({ length: (got.at(-1) ?? since.offset) - since.offset }, (_, k) => since.offset + 1 + k);
        if (JSON.stringify(got) !== JSON.stringify(expected)) recoveryViolations++;
      }
    }
    t.diagnostic(`${figures('graceful CLUSTER FAILOVER', resumeMs, o)} recovered_clients=${returning.length} recovery_violations=${recoveryViolations}`);
    assert.ok(resumeMs < 2000, `delivery resumed within 2 s (${resumeMs} ms)`);
    assert.deepEqual(o.violations, []);
    assert.equal(o.lostFrames, 0, 'no lost frame');
    assert.equal(o.undelivered, 0, 'every accepted publish reached every connected client');
    assert.equal(o.ackedNotInHistory, 0, 'a graceful failover loses no write');
    assert.equal(recoveryViolations, 0, 'the returning clients got exactly what they missed, then live ones');
  });

  test('a slot with live channels moved to another master: its subscriptions follow it, nothing is lost without a lost frame', async (t) => {
    const w = await world(t);
    const [channel, source] = [...w.channels][0]!;
    const slot = keySlot(`${w.prefix}{${channel}}`);
    const target = (await masters()).find((m) => m.port !== source.port)!;
    await flowing(w, [channel], 10);
    const movedAt = Date.now();
    await rc.command(target.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id);
    await rc.command(source.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id);
    const keys = (await rc.command(source.port, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '1000')).split('\n').filter((k) => k !== '');
    if (keys.length > 0) await rc.command(source.port, 'MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'KEYS', ...keys);
    await rc.command(target.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
    await rc.command(source.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
    for (const m of await masters()) {
      if (m.port !== source.port && m.port !== target.port) await rc.command(m.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
    }
    const resumeMs = await resumed(w, [channel], movedAt, 15_000);
    await flowing(w, [channel], 20);
    const listed = (await rc.command(target.port, 'PUBSUB', 'SHARDCHANNELS', `${w.prefix}{${channel}}`)).trim();
    assert.equal(listed, `${w.prefix}{${channel}}`, 'the channel is subscribed on its new master');
    const left = (await rc.command(source.port, 'PUBSUB', 'SHARDCHANNELS', `${w.prefix}{${channel}}`)).trim();
    await settle(w);
    const o = await outcome(w);
    t.diagnostic(`${figures(`slot ${slot} moved ${source.port} -> ${target.port} (${keys.length} keys)`, resumeMs, o)} still_on_source=${left === '' ? 0 : 1}`);
    assert.equal(left, '', 'nothing of it left subscribed on the old master');
    assert.deepEqual(o.violations, []);
    assert.equal(o.missing, 0);
  });
});

// Gateway processes on a local six-node Redis Cluster (REDIS_CLUSTER_NODES): delivery across
// gateways on channels spread over all three shards, each master holding exactly the shard
// channels of its slots (PUBSUB SHARDCHANNELS) and no classic pub/sub channel of hubcast's
// (PUBSUB CHANNELS), with history on and off; and recovery with `since` across shards and gateways.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from 'ioredis';
import { pino } from 'pino';
import type { BusListener } from '../../services/gateway/src/bus/bus.js';
import { historyKeys } from '../../services/gateway/src/bus/history-redis.js';
import type { Position } from '../../services/gateway/src/bus/position.js';
import { ClusterBus } from '../../services/gateway/src/bus/redis-cluster.js';
import { keySlot } from '../../services/gateway/src/bus/shards.js';
import { Stats } from '../../services/gateway/src/stats.js';
import { type NodeRole, type RedisCluster, startRedisCluster } from '../../tools/kit/src/redis-cluster.js';
import { publishOn } from '../helpers/bus.js';
import { TestClient } from '../helpers/client.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

describe('gateways on Redis Cluster', { timeout: 180_000 }, () => {
  let rc: RedisCluster;
  const gateways: GatewayProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    rc = await startRedisCluster();
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.kill()));
    await rc?.stop();
  });

  async function gateway(prefix: string, env: Record<string, string> = {}): Promise<GatewayProcess> {
    const g = await startGateway({ REDIS_CLUSTER_NODES: rc.seedList, REDIS_PREFIX: prefix, BUS_PROBE_INTERVAL_MS: '500', ...env });
    gateways.push(g);
    await g.waitReady(200, 20_000);
    return g;
  }

  async function connect(url: string): Promise<TestClient> {
    const c = await TestClient.connect(url);
    clients.push(c);
    return c;
  }

  async function masters(): Promise<NodeRole[]> {
    return (await rc.roles()).filter((r) => r.role === 'master' && r.slots.length > 0);
  }

  const owns = (m: NodeRole, slot: number): boolean => m.slots.some(([a, b]) => slot >= a && slot <= b);

  /** Two hub channels per master: their shard channels ({C}-tagged) sit in slots that master serves. */
  async function spread(prefix: string, base: string): Promise<Map<string, NodeRole>> {
    const out = new Map<string, NodeRole>();
    for (const m of await masters()) {
      let found = 0;
      for (let i = 0; found < 2; i++) {
        const channel = `${base}.${i}`;
        if (out.has(channel) || !owns(m, keySlot(`${prefix}{${channel}}`))) continue;
        out.set(channel, m);
        found++;
      }
    }
    return out;
  }

  async function deliveryAcrossShards(history: boolean): Promise<void> {
    const prefix = uniquePrefix();
    const env: Record<string, string> = history ? {} : { HISTORY_SIZE: '0' };
    const gs = await Promise.all([gateway(prefix, env), gateway(prefix, env), gateway(prefix, env)]);
    const byChannel = await spread(prefix, history ? 'spread' : 'plain');
    const channels = [...byChannel.keys()];
    const subscribers = await Promise.all(gs.map((g) => connect(g.ws(channels))));
    await Promise.all(gs.map((g) => g.waitReady(200, 20_000)));
    // Every gateway publishes on every channel: 3 × 6 × 5 messages, each to every subscriber.
    const publishers = await Promise.all(gs.map((g) => connect(g.ws())));
    const perChannel = 5;
    for (let n = 1; n <= perChannel; n++) {
      await Promise.all(
        publishers.flatMap((p, gi) => channels.map((channel) => p.request({ op: 'publish', channel, data: { g: gi, n } }))),
      );
    }
    const expected = gs.length * perChannel;
    for (const [si, s] of subscribers.entries()) {
      for (const channel of channels) {
        await s.waitForCount(() => s.messages(channel).length, expected, 15_000, `${expected} messages on ${channel} at subscriber ${si}`);
      }
    }
    for (const s of subscribers) {
      for (const channel of channels) {
        const got = s.messages(channel);
        assert.equal(got.length, expected, `each message once on ${channel}`);
        for (let gi = 0; gi < gs.length; gi++) {
          const fromG = got.filter((f) => (f.data as { g: number }).g === gi).map((f) => (f.data as { n: number }).n);
          assert.deepEqual(fromG, [1, 2, 3, 4, 5], `gateway ${gi}'s messages on ${channel} in order`);
        }
        if (history) {
          assert.deepEqual(got.map((f) => f.offset), Array.from({ length: expected }, (_, i) => i + 1), `offsets 1..${expected} on ${channel}`);
          assert.equal(new Set(got.map((f) => f.epoch)).size, 1, 'one epoch');
        } else {
          assert.equal(got[0]!.offset, undefined, 'no positions with history off');
        }
      }
    }

    // Each master holds exactly the shard channels of its own slots, and no classic channel of ours.
    const all = await masters();
    const listed = new Set<string>();
    for (const m of all) {
      const names = (await rc.command(m.port, 'PUBSUB', 'SHARDCHANNELS', `${prefix}*`)).split('\n').filter((n) => n !== '');
      for (const name of names) {
        assert.ok(owns(m, keySlot(name)), `${name} listed on ${m.port}, which serves its slot`);
        listed.add(name);
      }
      assert.ok(names.some((n) => n.startsWith(`${prefix}{#probe.`)), `a probe channel on master ${m.port}`);
    }
    for (const channel of channels) assert.ok(listed.has(`${prefix}{${channel}}`), `${channel} subscribed on its master`);
    for (const port of rc.nodes.map((n) => n.port)) {
      assert.equal((await rc.command(port, 'PUBSUB', 'CHANNELS', `${prefix}*`)).trim(), '', `no classic pub/sub channel of hubcast's on ${port}`);
    }
    for (const g of gs) assert.equal(await g.metric('hubcast_info{bus="redis_cluster"}'), 1);
  }

  test('history on: every gateway delivers every message on channels over all three shards, in order with offsets; SSUBSCRIBE on the owning master only, no classic PUBLISH', async () => {
    await deliveryAcrossShards(true);
  });

  test('history off (HISTORY_SIZE=0): SPUBLISH with the envelope, the same delivery, no classic PUBLISH', async () => {
    await deliveryAcrossShards(false);
  });

  test('recovery with since across shards and gateways: exactly the missed messages, then live ones', async () => {
    const prefix = uniquePrefix();
    const [g1, g2, g3] = await Promise.all([gateway(prefix), gateway(prefix), gateway(prefix)]);
    const channels = [...(await spread(prefix, 'rec')).keys()];
    const first = await connect(g1.ws());
    const acks = new Map<string, { offset: number; epoch: string }>();
    for (const channel of channels) {
      const ack = await first.request({ op: 'subscribe', channel });
      acks.set(channel, { offset: ack.offset!, epoch: ack.epoch! });
    }
    const publisher = await connect(g2.ws());
    for (let n = 1; n <= 3; n++) for (const channel of channels) await publisher.request({ op: 'publish', channel, data: { n } });
    for (const channel of channels) await first.waitForCount(() => first.messages(channel).length, 3, 10_000, `3 on ${channel}`);
    const last = new Map(channels.map((c) => {
      const m = first.messages(c).at(-1)!;
      return [c, { offset: m.offset!, epoch: m.epoch! }];
    }));
    first.close();
    // Missed while away: 4..8 on every channel.
    for (let n = 4; n <= 8; n++) for (const channel of channels) await publisher.request({ op: 'publish', channel, data: { n } });
    const back = await connect(g3.ws());
    for (const channel of channels) {
      const ack = await back.request({ op: 'subscribe', channel, since: last.get(channel) });
      assert.equal(ack.recovered, true, `recovered on ${channel}`);
      assert.equal(ack.epoch, acks.get(channel)!.epoch, 'the epoch acked at the first subscribe');
    }
    for (const channel of channels) await publisher.request({ op: 'publish', channel, data: { n: 9 } });
    for (const channel of channels) {
      await back.waitForCount(() => back.messages(channel).length, 6, 10_000, `6 on ${channel} after recovery`);
      const got = back.messages(channel);
      assert.deepEqual(got.map((f) => (f.data as { n: number }).n), [4, 5, 6, 7, 8, 9], `missed then live on ${channel}, each once`);
      assert.deepEqual(got.map((f) => f.offset), [4, 5, 6, 7, 8, 9]);
    }
  });

  test('history went backwards under one epoch (a failover lost acknowledged writes): the channel is fenced into a new epoch, one lost, no offset reused', async (t) => {
    const prefix = uniquePrefix();
    const quiet = pino({ level: 'silent' });
    const events: { kind: 'message' | 'lost'; offset: number; epoch: string }[] = [];
    const listener: BusListener = {
      message: (_c, _p, position?: Position) => void events.push({ kind: 'message', offset: position!.offset, epoch: position!.epoch }),
      lost: (_c, position) => void events.push({ kind: 'lost', ...position }),
      readiness: () => undefined,
    };
    const options = { nodes: rc.seeds, prefix, timeoutMs: 2000, probeIntervalMs: 200, probeTimeoutMs: 3000, history: { size: 100, ttlS: 60 } };
    const stats = new Stats();
    const [pub, sub] = [new ClusterBus(options, new Stats(), quiet), new ClusterBus(options, stats, quiet)];
    sub.setListener(listener);
    pub.setListener({ message: () => undefined, lost: () => undefined, readiness: () => undefined });
    t.after(() => Promise.all([pub.close(), sub.close()]));
    await Promise.all([pub.start(), sub.start()]);
    await waitUntil(() => pub.ready && sub.ready, { timeoutMs: 20_000, what: 'both buses ready' });
    const frame = (n: number): Buffer => Buffer.from(`{"op":"message","channel":"f","data":${n}}`);
    sub.subscribe('f');
    await sub.whenLive('f');
    for (let n = 1; n <= 5; n++) await publishOn(pub, 'f', frame(n));
    await waitUntil(() => events.length === 5, { timeoutMs: 10_000, what: 'offsets 1-5 delivered' });
    const epoch = events[0]!.epoch;

    // What a promoted replica that missed offsets 4 and 5 looks like, while the subscriber is cut off.
    const direct = new Cluster([...rc.seeds]);
    direct.on('error', () => undefined);
    t.after(() => direct.disconnect());
    const { meta, stream } = historyKeys(prefix, 'f');
    await direct.hset(meta, 'o', '3');
    await direct.xdel(stream, '4-0', '5-0');
    const owner = await rc.masterOf(keySlot(`${prefix}{f}`));
    await rc.command(owner.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');

    await waitUntil(() => events.some((e) => e.kind === 'lost'), { timeoutMs: 15_000, what: 'the fence and its lost frame' });
    const lost = events.find((e) => e.kind === 'lost')!;
    assert.notEqual(lost.epoch, epoch, 'a new epoch');
    assert.equal(lost.offset, 0, 'from offset 0: the old history counts as lost');
    assert.equal(stats.busRewound, 2, 'offsets 4 and 5 went back');
    assert.equal(await direct.hget(meta, 'e'), lost.epoch, 'stored: every gateway sees the new epoch');
    await sub.whenLive('f');
    await publishOn(pub, 'f', frame(6));
    await waitUntil(() => events.at(-1)?.kind === 'message' && events.at(-1)!.epoch === lost.epoch, { timeoutMs: 10_000, what: 'the next message' });
    assert.deepEqual(events.at(-1), { kind: 'message', offset: 1, epoch: lost.epoch }, 'offset 4 is never reused under the old epoch');
  });
});

// What ioredis 5 Cluster does on a live six-node Redis Cluster, pinned down one behaviour per test
// (issue 12, "What we measured"), and what bus/shards.ts and bus/slot-refresh.ts do about each.
// The figures each test measures are printed as diagnostics; docs/redis-cluster-notes.md keeps them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Cluster, type ClusterOptions, Redis } from 'ioredis';
import { ReconnectBound, groupBySlot, isSubscriptionLost, keySlot, FAILOVER_REFRESH } from '../../services/gateway/src/bus/shards.js';
import { SlotRefresh } from '../../services/gateway/src/bus/slot-refresh.js';
import { RedisHistory, historyKeys } from '../../services/gateway/src/bus/history-redis.js';
import { type Position, positionPayload, readEpoch, readOffset } from '../../services/gateway/src/bus/position.js';
import { type NodeRole, type RedisCluster, startRedisCluster } from '../../tools/kit/src/redis-cluster.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil, within } from '../helpers/wait.js';

/** Messages one client received, per shard channel, in arrival order. */
class Inbox {
  readonly byChannel = new Map<string, string[]>();
  constructor(client: Cluster) {
    client.on('smessage', (channel: string, message: string) => {
      let list = this.byChannel.get(channel);
      if (list === undefined) this.byChannel.set(channel, (list = []));
      list.push(message);
    });
  }
  of(channel: string): string[] {
    return this.byChannel.get(channel) ?? [];
  }
}

function slotsOf(master: NodeRole): number {
  return master.slots.reduce((n, [a, b]) => n + b - a + 1, 0);
}

describe('ioredis Cluster on a live Redis Cluster', { timeout: 300_000 }, () => {
  let rc: RedisCluster;
  const clients: (Cluster | Redis)[] = [];
  const prefix = uniquePrefix();

  before(async () => {
    rc = await startRedisCluster();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await rc?.stop();
  });

  /** A Cluster client, ready, disconnected after the file; errors counted (a listener is required). */
  async function connect(options: ClusterOptions = {}): Promise<{ client: Cluster; errors: Error[] }> {
    const client = new Cluster([...rc.seeds], options);
    const errors: Error[] = [];
    client.on('error', (err: Error) => errors.push(err));
    clients.push(client);
    await within(new Promise((resolve) => client.once('ready', resolve)), 15_000, 'the Cluster client ready');
    return { client, errors };
  }

  /** A plain connection to one node, disconnected after the file. */
  async function nodeConnection(port: number): Promise<Redis> {
    const conn = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
    conn.on('error', () => undefined); // the SIGKILL test may kill its node; that is not this connection's test
    clients.push(conn);
    await conn.connect();
    return conn;
  }

  /** A shard channel (hash-tagged) whose slot the given master serves. */
  function channelOn(master: NodeRole, name: string): string {
    for (let i = 0; ; i++) {
      const channel = `${prefix}{${name}.${i}}`;
      const slot = keySlot(channel);
      if (master.slots.some(([a, b]) => slot >= a && slot <= b)) return channel;
    }
  }

  async function masters(): Promise<NodeRole[]> {
    return (await rc.roles()).filter((r) => r.role === 'master' && !r.failed && slotsOf(r) > 0);
  }

  test('keySlot agrees with CLUSTER KEYSLOT', async () => {
    const node = await nodeConnection(rc.nodes[0]!.port);
    const names = ['', 'foo', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', 'foo{bar}{zap}', '{unclosed', 'café', `${prefix}{news}`];
    for (let i = 0; i < 300; i++) names.push(`${prefix}ch-${i}`, `hist:{ch-${i}}:top`);
    const pipeline = node.pipeline();
    for (const name of names) pipeline.cluster('KEYSLOT', name);
    const replies = (await pipeline.exec())!;
    names.forEach((name, i) => assert.equal(keySlot(name), replies[i]![1], `slot of ${JSON.stringify(name)}`));
  });

  test('one SSUBSCRIBE names channels of one slot only: CROSSSLOT otherwise; groupBySlot avoids it', async () => {
    const [m] = await masters();
    const a = `${prefix}{cross-a}`;
    let b = `${prefix}{cross-b}`;
    for (let i = 0; keySlot(b) === keySlot(a); i++) b = `${prefix}{cross-b${i}}`;
    // Straight to a master: Redis itself refuses the multi-slot command.
    const raw = await nodeConnection(m!.port);
    await assert.rejects(raw.ssubscribe(a, b), /CROSSSLOT/);
    // ioredis refuses it before sending.
    const { client } = await connect({ shardedSubscribers: true });
    await assert.rejects(client.ssubscribe(a, b), /CROSSSLOT/);

    // Channels over every shard, grouped per slot: every group subscribes and every channel delivers.
    const channels = (await masters()).flatMap((master) => [channelOn(master, 'grp-x'), channelOn(master, 'grp-y')]);
    channels.push(`${prefix}{grp-x.0}tail`); // same slot as one above, by its tag
    const inbox = new Inbox(client);
    const groups = groupBySlot(channels);
    assert.ok(groups.length < channels.length, 'the tagged pair went in one command');
    for (const group of groups) await client.ssubscribe(...group);
    const { client: publisher } = await connect();
    await waitUntil(
      async () => {
        for (const channel of channels) await publisher.spublish(channel, 'hello');
        return channels.every((c) => inbox.of(c).length > 0);
      },
      { timeoutMs: 5000, intervalMs: 100, what: 'every grouped channel delivering' },
    );
  });

  test('with shardedSubscribers off, ssubscribe never delivers (a sharded client receives the same publishes)', async (t) => {
    const all = await masters();
    const channels = all.map((master) => channelOn(master, 'off'));
    const { client: off } = await connect({ shardedSubscribers: false });
    const offInbox = new Inbox(off);
    let settled = 0;
    // It may never resolve (the command sits on a subscriber connection that got MOVED): not awaited.
    for (const c of channels) off.ssubscribe(c).then(() => settled++, () => settled++);
    const { client: on } = await connect({ shardedSubscribers: true });
    const onInbox = new Inbox(on);
    for (const c of channels) await on.ssubscribe(c);
    const { client: publisher } = await connect();
    await waitUntil(
      async () => {
        for (const c of channels) await publisher.spublish(c, 'm');
        return channels.every((c) => onInbox.of(c).length >= 3);
      },
      { timeoutMs: 5000, intervalMs: 100, what: 'the sharded client receiving on every shard' },
    );
    // Well past the moment the sharded client had three of each.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const c of channels) assert.deepEqual(offInbox.of(c), [], `nothing on ${c} without shardedSubscribers`);
    t.diagnostic(`shardedSubscribers off: ${settled} of ${channels.length} ssubscribe calls settled; 0 messages delivered`);
  });

  test('a keyless script runs on a random master, where SPUBLISH to another slot fails; a script keyed in the channel slot runs on its master and reaches SSUBSCRIBErs', async (t) => {
    const { client } = await connect({ shardedSubscribers: true });
    const masterPorts = new Set((await masters()).map((m) => m.port));
    const PORT = "return string.match(redis.call('INFO', 'server'), 'tcp_port:(%d+)')";
    const ran = new Map<number, number>();
    for (let i = 0; i < 30; i++) {
      const port = Number(await client.eval(PORT, 0));
      ran.set(port, (ran.get(port) ?? 0) + 1);
    }
    assert.ok([...ran.keys()].every((p) => masterPorts.has(p)), 'only masters run it');
    assert.ok(ran.size >= 2, `keyless scripts went to ${ran.size} master(s)`);

    const channel = `${prefix}{lua}`;
    let refused = 0;
    for (let i = 0; i < 30; i++) {
      await client.eval("return redis.call('SPUBLISH', ARGV[1], ARGV[2])", 0, channel, 'x').then(
        () => undefined,
        (err: Error) => {
          assert.match(err.message, /non local key/);
          refused++;
        },
      );
    }
    assert.ok(refused > 0 && refused < 30, `${refused} of 30 keyless SPUBLISH scripts refused`);

    const inbox = new Inbox(client);
    await client.ssubscribe(channel);
    const owner = await rc.masterOf(keySlot(channel));
    const SCRIPT = "redis.call('INCR', KEYS[1]); redis.call('SPUBLISH', ARGV[1], ARGV[2]); return string.match(redis.call('INFO', 'server'), 'tcp_port:(%d+)')";
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const port = Number(await client.eval(SCRIPT, 1, `${prefix}{lua}:top`, channel, String(i)));
      assert.equal(port, owner.port, 'the keyed script runs on the channel slot master');
      sent.push(String(i));
    }
    await waitUntil(() => inbox.of(channel).length >= sent.length, { timeoutMs: 5000, what: 'every scripted SPUBLISH delivered' });
    assert.deepEqual(inbox.of(channel), sent, 'all of them, in order');
    t.diagnostic(`keyless scripts ran on ${ran.size} masters; ${refused}/30 keyless SPUBLISH refused`);
  });

  test("the history publish script (bus/history-redis.ts) runs on a Cluster with SPUBLISH: positions in order, delivered to SSUBSCRIBErs, readable back", async () => {
    const { client } = await connect({ shardedSubscribers: true });
    const received: Buffer[] = [];
    client.on('smessageBuffer', (_channel: Buffer, message: Buffer) => received.push(message));
    // RedisHistory is typed for a single Redis; a Cluster offers the same defineCommand (the wiring widens the type).
    const history = new RedisHistory(client as unknown as Redis, { prefix, size: 100, ttlS: 60, publishCommand: 'SPUBLISH' });
    const channel = 'news';
    const pubsub = `${prefix}{${channel}}`;
    assert.equal(keySlot(pubsub), keySlot(historyKeys(prefix, channel).meta), 'channel and history keys share the slot');
    await client.ssubscribe(pubsub);
    const positions: Position[] = [];
    for (let i = 1; i <= 10; i++) positions.push(await history.publish(channel, pubsub, Buffer.from(`{"op":"message","channel":"news","data":${i}`)));
    assert.deepEqual(positions.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await waitUntil(() => received.length >= 10, { timeoutMs: 5000, what: 'ten scripted SPUBLISHes delivered' });
    assert.deepEqual(received.map((m) => [readOffset(m), readEpoch(m)]), positions.map((p) => [p.offset, p.epoch]), 'the position header, in order');
    const frames = received.map((m) => JSON.parse(positionPayload(m).toString()) as { data: number; offset: number; epoch: string });
    assert.deepEqual(frames.map((f) => [f.data, f.offset, f.epoch]), positions.map((p, i) => [i + 1, p.offset, p.epoch]));
    const read = await history.since(channel, 5, positions[0]!.epoch, 100);
    assert.equal(read.complete, true);
    assert.deepEqual(read.messages.map((m) => m.offset), [6, 7, 8, 9, 10]);
  });

  test('graceful CLUSTER FAILOVER pushes sunsubscribe: the channel stays dead unless the slot map is refreshed on the schedule', async (t) => {
    const [victim] = await masters();
    const replica = (await rc.roles()).find((r) => r.masterId === victim!.id)!;
    const channel = channelOn(victim!, 'failover');
    const plain = await connect({ shardedSubscribers: true });
    const scheduled = await connect({ shardedSubscribers: true });
    const refresh = new SlotRefresh(scheduled.client);
    t.after(() => refresh.uninstall());
    const lost: { client: string; at: number; err: Error }[] = [];
    plain.client.on('nodeError', (err: Error) => lost.push({ client: 'plain', at: Date.now(), err }));
    scheduled.client.on('nodeError', (err: Error) => lost.push({ client: 'scheduled', at: Date.now(), err }));
    const inboxes = { plain: new Inbox(plain.client), scheduled: new Inbox(scheduled.client) };
    await plain.client.ssubscribe(channel);
    await scheduled.client.ssubscribe(channel);
    const { client: publisher } = await connect();
    let seq = 0;
    const arrivals: { seq: number; at: number }[] = [];
    scheduled.client.on('smessage', (c: string, m: string) => {
      if (c === channel) arrivals.push({ seq: Number(m), at: Date.now() });
    });
    await waitUntil(
      async () => {
        await publisher.spublish(channel, String(++seq));
        return inboxes.plain.of(channel).length > 0 && inboxes.scheduled.of(channel).length > 0;
      },
      { timeoutMs: 5000, intervalMs: 50, what: 'both clients receiving before the failover' },
    );

    // Publish every 20 ms through the failover (MOVED sends each to the new master).
    let publishing = true;
    const failures: string[] = [];
    const loop = (async () => {
      while (publishing) {
        await publisher.spublish(channel, String(++seq)).catch((err: Error) => failures.push(err.message));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    t.after(async () => {
      publishing = false;
      await loop;
    });
    const failoverSeq = seq;
    await rc.command(replica.port, 'CLUSTER', 'FAILOVER');
    await waitUntil(async () => (await rc.masterOf(keySlot(channel))).port === replica.port, { timeoutMs: 15_000, what: 'the replica promoted' });
    const pushed = (client: string): boolean => lost.some((l) => l.client === client && isSubscriptionLost(l.err));
    await waitUntil(() => pushed('scheduled') && pushed('plain'), { timeoutMs: 5000, what: 'the pushed sunsubscribe reported to both clients' });
    // Published after the push: the old master no longer holds the subscription.
    const seqAtLost = seq;
    const lostAt = lost.find((l) => l.client === 'scheduled' && isSubscriptionLost(l.err))!.at;

    // The scheduled client comes back; the plain one stays dead, with publishes flowing all along.
    await waitUntil(() => arrivals.some((a) => a.at > lostAt), { timeoutMs: 5000, what: 'delivery back on the scheduled client' });
    const back = arrivals.find((a) => a.at > lostAt)!;
    refresh.settle();
    const runs = refresh.counts.run;
    const until = seq + 100; // about 2 s more
    await waitUntil(() => inboxes.scheduled.of(channel).map(Number).includes(until), { timeoutMs: 15_000, what: '100 more publishes delivered' });
    publishing = false;
    await loop;
    assert.deepEqual(inboxes.plain.of(channel).map(Number).filter((n) => n > seqAtLost), [], 'no refresh: nothing reaches the plain client');
    const delivered = new Set(inboxes.scheduled.of(channel).map(Number));
    for (let n = back.seq; n <= until; n++) assert.ok(delivered.has(n), `once back, the scheduled client misses nothing (${n})`);
    assert.ok(runs >= 1, 'the schedule refreshed the slot map');
    let missing = 0;
    for (let n = failoverSeq + 1; n < back.seq; n++) if (!delivered.has(n)) missing++;
    t.diagnostic(
      `graceful failover: delivery back ${back.at - lostAt} ms after the sunsubscribe push, ` +
        `${runs} refresh(es) run before settle (schedule ${FAILOVER_REFRESH.join('/')} ms); ` +
        `${missing} of ${back.seq - failoverSeq - 1} publishes between the failover and the first one back missed (pub/sub is at most once); ${failures.length} publishes failed`,
    );
  });

  test('SIGKILL of a master: errors on every reconnect cycle, a crash without a listener, a tight loop unbounded, a low rate with the bound', async (t) => {
    const [victim] = (await masters()).slice(-1);
    const channel = channelOn(victim!, 'kill');

    // No error listener: a child process, since the unhandled error ends the process. It holds a
    // channel on another master, so its subscriber for the victim is idle (lazy) until, during the
    // outage, a channel on the victim is subscribed: that subscriber's failed connect emits `error`
    // from a promise chain ioredis does not await, and with no listener the process dies.
    const [other] = (await masters()).filter((m) => m.port !== victim!.port);
    const dir = mkdtempSync(join(tmpdir(), 'hubcast-noerr-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const script = join(dir, 'no-listener.mjs');
    const ioredis = pathToFileURL(createRequire(import.meta.url).resolve('ioredis')).href;
    writeFileSync(
      script,
      `import { Cluster } from ${JSON.stringify(ioredis)};
const c = new Cluster(JSON.parse(process.argv[2]), { shardedSubscribers: true });
c.once('ready', async () => { await c.ssubscribe(process.argv[3]); console.log('subscribed'); });
process.on('SIGUSR2', () => c.ssubscribe(process.argv[4]).catch(() => undefined));
setInterval(() => undefined, 1000);
`,
    );
    const child = spawn(process.execPath, [script, JSON.stringify(rc.seeds), channelOn(other!, 'kill-other'), channel], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => void child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await within(new Promise((resolve) => child.stdout.once('data', resolve)), 15_000, 'the child subscribed');

    const plain = await connect({ shardedSubscribers: true });
    const bounded = await connect({ shardedSubscribers: true });
    const refresh = new SlotRefresh(bounded.client, new ReconnectBound());
    t.after(() => refresh.uninstall());
    const attempts = { plain: 0, bounded: 0 };
    plain.client.on('+subscriber', () => attempts.plain++);
    bounded.client.on('+subscriber', () => attempts.bounded++);
    const inboxes = { plain: new Inbox(plain.client), bounded: new Inbox(bounded.client) };
    await plain.client.ssubscribe(channel);
    await bounded.client.ssubscribe(channel);
    const { client: publisher } = await connect();
    await waitUntil(
      async () => {
        await publisher.spublish(channel, 'before');
        return inboxes.plain.of(channel).length > 0 && inboxes.bounded.of(channel).length > 0;
      },
      { timeoutMs: 5000, intervalMs: 50, what: 'both clients receiving before the kill' },
    );

    const errorsBefore = { plain: plain.errors.length, bounded: bounded.errors.length };
    const attemptsBefore = { ...attempts };
    const runsBefore = refresh.counts.run;
    const cpu = process.cpuUsage();
    const killedAt = Date.now();
    await rc.kill(victim!.port);
    child.kill('SIGUSR2');

    const code = await within(exited, 20_000, 'the child without an error listener to die');
    assert.notEqual(code, 0);
    assert.match(stderr, /Emitted 'error' event/, stderr);

    await rc.waitHealthy(30_000);
    const healthyAt = Date.now();
    const used = process.cpuUsage(cpu);
    const outageS = (healthyAt - killedAt) / 1000;
    const errors = { plain: plain.errors.length - errorsBefore.plain, bounded: bounded.errors.length - errorsBefore.bounded };
    const cycles = { plain: attempts.plain - attemptsBefore.plain, bounded: attempts.bounded - attemptsBefore.bounded };
    const runs = refresh.counts.run - runsBefore;

    // Delivery resumes on both (the promoted replica now serves the slot), within 10 s of the kill.
    await waitUntil(
      async () => {
        await publisher.spublish(channel, 'after').catch(() => undefined);
        return inboxes.plain.of(channel).includes('after') && inboxes.bounded.of(channel).includes('after');
      },
      { timeoutMs: Math.max(1000, 10_000 - (Date.now() - killedAt)), intervalMs: 50, what: 'delivery after the failover on both clients' },
    );
    const resumedS = (Date.now() - killedAt) / 1000;

    t.diagnostic(
      `SIGKILL: cluster healthy again after ${outageS.toFixed(1)} s, delivery resumed at ${resumedS.toFixed(1)} s; ` +
        `unbounded: ${errors.plain} errors, ${cycles.plain} subscriber (re)connects (${(cycles.plain / outageS).toFixed(1)}/s); ` +
        `bounded: ${errors.bounded} errors, ${cycles.bounded} subscriber (re)connects (${(cycles.bounded / outageS).toFixed(1)}/s), ${runs} slot refreshes run of ${refresh.counts.asked} asked; ` +
        `test process CPU ${((used.user + used.system) / 1000).toFixed(0)} ms over the outage (both clients)`,
    );
    assert.ok(errors.plain >= 2 && errors.plain >= cycles.plain / 2, 'an error on each reconnect cycle');
    assert.ok(errors.bounded >= 1);
    // The bound: after the first failure, at most one attempt per gap (100 ms doubling to 1 s).
    assert.ok(runs <= outageS + 6, `${runs} refreshes in ${outageS.toFixed(1)} s`);
    assert.ok(cycles.bounded < cycles.plain, `bounded ${cycles.bounded} vs unbounded ${cycles.plain} reconnects`);
  });
});

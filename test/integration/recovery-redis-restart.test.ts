// Redis restarted under the gateways (issue 10, Proof). With persistence (AOF, appendfsync
// always) the history survives: positions continue in the same epoch, what a gateway's subscriber
// missed just before the restart (its pushes dropped by a proxy, so the gap is certain) is
// repaired from the restored history, and a client away across the restart recovers. Without
// persistence the history is gone: the epoch changes, a connected client is sent `lost`, and a
// returning client gets recovered:false at the new position.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, describe, test } from 'node:test';
import { type Proc, startProc } from '../../tools/kit/src/process.js';
import { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';
import { LoadPublisher } from '../helpers/load.js';
import { type Ack, type Position, type PositionedFrame, messagesOf, sequenceProblems, subscribe } from '../helpers/positions.js';
import { startProxy } from '../helpers/proxy.js';
import { uniquePrefix } from '../helpers/redis.js';
import { freePort, waitUntil, within } from '../helpers/wait.js';

const key = (data: unknown): string => {
  const d = data as { p: string; n: number };
  return `${d.p}:${d.n}`;
};

/** redis-server with AOF, fsync on every write, in its own directory: what survives a SIGKILL is what was acknowledged. */
async function persistentRedis(t: TestContext): Promise<{ url: string; port: number; kill(): Promise<void>; start(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hubcast-aof-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, '--protected-mode', 'no'];
  let proc: Proc | null = null;
  const start = async (): Promise<void> => {
    proc = startProc('redis-aof', 'redis-server', args);
    await proc.waitForLine(/Ready to accept connections/, 15_000);
  };
  const kill = async (): Promise<void> => {
    const p = proc;
    proc = null;
    await p?.stop('SIGKILL');
  };
  t.after(async () => {
    await kill();
    await rm(dir, { recursive: true, force: true });
  });
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, kill, start };
}

describe('recovery across a Redis restart', { timeout: 120_000 }, () => {
  const fx = useFixture();

  test('with AOF: positions continue, gaps are repaired, an absent client recovers', async (t) => {
    const redis = await persistentRedis(t);
    // History holds everything the absent client misses (a few hundred messages at this rate).
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: uniquePrefix(), BUS_PROBE_INTERVAL_MS: '500', HISTORY_SIZE: '2000' };
    // A reaches Redis through a proxy that can drop its subscriber's pushes; B directly.
    const proxy = await startProxy('127.0.0.1', redis.port);
    t.after(() => proxy.close());
    const gateways: GatewayProcess[] = await Promise.all([startGateway({ ...env, REDIS_URL: proxy.url }), startGateway(env)]);
    t.after(() => Promise.all(gateways.map((g) => g.kill())));
    await Promise.all(gateways.map((g) => g.waitReady()));
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const channel = 'kept';

    const watchers: { client: TestClient; ack: Ack }[] = [];
    for (let i = 0; i < 2; i++) {
      const client = await fx.connect(a.ws());
      watchers.push({ client, ack: await subscribe(client, channel) });
    }
    const away = await fx.connect(a.ws());
    await subscribe(away, channel);
    const publisher = await LoadPublisher.connect('pub', b.ws());
    t.after(() => publisher.close());
    const flowing = (more: number): Promise<unknown> =>
      Promise.all(watchers.map((w) => w.client.waitForCount(() => w.client.frames.length, w.client.frames.length + more, 20_000, `${more} more`)));

    publisher.start([channel], 5);
    await flowing(50);
    away.close();
    await within(away.closed, 5000, 'the absent client to go');
    const awayLast = messagesOf(away.frames, channel).at(-1)!;
    const since: Position = { offset: awayLast.offset, epoch: awayLast.epoch };
    await flowing(50);

    // The last messages before the restart never reach A (Redis has them, in its AOF).
    const [aSub] = proxy.find('hubcast-sub');
    assert.ok(aSub, "A's subscriber connection goes through the proxy");
    aSub.dropPushes(true);
    await waitUntil(() => aSub.droppedPushes >= 10, { timeoutMs: 10_000, what: "10 pushes dropped on A's subscriber" });
    await redis.kill();
    await Promise.all(gateways.map((g) => g.waitReady(503, 10_000)));
    const refusedBefore = publisher.count('not_sent');
    await waitUntil(() => publisher.count('not_sent') >= refusedBefore + 5, { timeoutMs: 10_000, what: '5 publishes refused while Redis is down' });
    await redis.start();
    await Promise.all(gateways.map((g) => g.waitReady(200, 15_000)));
    await flowing(100);
    publisher.stop();
    await publisher.settled();

    const sent = [...publisher.sent.values()];
    const accepted = sent.filter((s) => s.fate === 'accepted');
    const mayHave = new Set(sent.filter((s) => s.fate === 'accepted' || s.fate === 'unconfirmed').map((s) => s.key));
    const lastKey = accepted.at(-1)!.key;
    for (const w of watchers) await w.client.waitFor((f) => f.op === 'message' && key(f.data) === lastKey, 15_000, 'the last publish');

    const check = (what: string, messages: (PositionedFrame & Position)[], from: Position, acceptedAfter: typeof accepted): void => {
      assert.deepEqual(sequenceProblems(messages, from, what), [], `${what}: offsets continue, one epoch, across the restart`);
      const keys = messages.map((m) => key(m.data));
      for (const k of keys) assert.ok(mayHave.has(k), `${what}: ${k} was accepted (or unconfirmed)`);
      const got = new Set(keys);
      assert.deepEqual(
        keys.filter((k) => acceptedAfter.some((s) => s.key === k)),
        acceptedAfter.map((s) => s.key).filter((k) => got.has(k)),
        `${what}: in publish order`,
      );
      const missing = acceptedAfter.filter((s) => !got.has(s.key)).map((s) => s.key);
      assert.deepEqual(missing, [], `${what}: every accepted publish`);
    };
    for (const [i, w] of watchers.entries()) {
      check(`watcher ${i}`, messagesOf(w.client.frames, channel), w.ack, accepted);
      assert.equal(w.client.frames.filter((f) => f.op === 'lost').length, 0);
    }

    // The absent client comes back to the other gateway: its position is still good.
    const back = await fx.connect(b.ws());
    const ack = await subscribe(back, channel, since);
    assert.equal(ack.recovered, true, JSON.stringify(ack));
    assert.equal(ack.epoch, since.epoch, 'the same epoch after the restart');
    await back.waitFor((f) => f.op === 'message' && key(f.data) === lastKey, 15_000, 'the replay up to the last publish');
    const acceptedAfterSince = accepted.slice(accepted.findIndex((s) => s.key === key(awayLast.data)) + 1);
    check('returning client', messagesOf(back.frames, channel), since, acceptedAfterSince);

    for (const g of gateways) {
      assert.equal(await g.metric('hubcast_bus_gaps_total'), 0, 'no unrepaired gap');
      assert.equal(await g.metric('hubcast_bus_lost_total'), 0, 'no lost history');
    }
    // Of the pushes dropped, at most a few were A's own probes: the rest were repaired.
    const repaired = await a.metric('hubcast_bus_gaps_repaired_total');
    assert.ok(repaired >= aSub.droppedPushes - 3, `A repaired ${repaired} of ${aSub.droppedPushes} dropped pushes from the restored history`);
    const unconfirmed = sent.filter((s) => s.fate === 'unconfirmed').length;
    t.diagnostic(
      `redis restart with AOF: accepted=${accepted.length} refused=${publisher.count('not_sent')} unconfirmed=${unconfirmed} ` +
        `dropped before the kill at A=${aSub.droppedPushes} repaired on A=${repaired} unrepaired=0 lost=0; returning client replayed ${ack.offset - since.offset}`,
    );
  });

  test('without persistence: a new epoch, lost to connected clients, recovered:false to returning ones', async (t) => {
    const redis = fx.controllableRedis(t, 'restart');
    if (redis === null) return;
    const env = { REDIS_PREFIX: uniquePrefix(), BUS_PROBE_INTERVAL_MS: '500' };
    const [a, b] = await Promise.all([fx.gateway(env), fx.gateway(env)]);
    const channel = 'volatile';
    const watcher = await fx.connect(a.ws());
    const start = await subscribe(watcher, channel);
    const away = await fx.connect(a.ws());
    await subscribe(away, channel);
    const publisher = await fx.connect(b.ws());
    for (let i = 0; i < 3; i++) assert.equal((await publisher.request({ op: 'publish', channel, data: i })).op, 'ack');
    await away.waitForCount(() => away.messages(channel).length, 3, 10_000, 'three messages');
    away.close();
    const since: Position = { offset: start.offset + 3, epoch: start.epoch };

    await redis.stop();
    await Promise.all([a, b].map((g) => g.waitReady(503, 10_000)));
    await redis.start();
    await Promise.all([a, b].map((g) => g.waitReady(200, 15_000)));

    // Told by the top check after the reconnect, or at the latest by the next message (the test
    // below holds the top check to telling without one).
    assert.equal((await publisher.request({ op: 'publish', channel, data: 'after' })).op, 'ack');
    await watcher.waitFor((f) => f.op === 'message' && f.data === 'after', 10_000, 'the first message after');
    const lost = watcher.frames.find((f) => f.op === 'lost' && f.channel === channel) as (PositionedFrame & Position) | undefined;
    assert.ok(lost !== undefined, 'a lost notice');
    assert.notEqual(lost.epoch, start.epoch, 'lost names the new epoch');
    assert.equal(await a.metric('hubcast_bus_lost_total'), 1);
    const messages = messagesOf(watcher.frames, channel);
    assert.deepEqual(sequenceProblems(messages.slice(0, 3), start, 'before'), []);
    assert.deepEqual(sequenceProblems(messages.slice(3), lost, 'after the lost notice'), [], 'the next message follows the lost position');
    assert.ok(watcher.frames.indexOf(lost) < watcher.frames.indexOf(messages[3]!), 'lost comes first');

    const back = await fx.connect(b.ws());
    const ack = await subscribe(back, channel, since);
    assert.equal(ack.recovered, false, JSON.stringify(ack));
    assert.equal(ack.epoch, lost.epoch, 'the current epoch');
    assert.equal(ack.offset, lost.offset + 1, 'the current top');
    assert.equal(await b.metric('hubcast_recoveries_total{result="epoch_mismatch"}'), 1);
    t.diagnostic(`redis restart without persistence: epoch ${start.epoch} -> ${lost.epoch}; lost at ${lost.offset}; returning client recovered:false at ${ack.offset}`);
  });

  test('without persistence, the subscriber back before the publisher: connected clients are still told', async (t) => {
    const redis = fx.controllableRedis(t, 'restart');
    if (redis === null) return;
    const target = new URL(redis.url);
    const proxy = await startProxy(target.hostname, Number(target.port));
    t.after(() => proxy.close());
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all([fx.gateway({ REDIS_URL: proxy.url, REDIS_PREFIX: prefix }), fx.gateway({ REDIS_PREFIX: prefix })]);
    const channel = 'quiet';
    const watcher = await fx.connect(a.ws());
    const start = await subscribe(watcher, channel);
    const publisher = await fx.connect(b.ws());
    for (let i = 0; i < 3; i++) assert.equal((await publisher.request({ op: 'publish', channel, data: i })).op, 'ack');
    await watcher.waitForCount(() => watcher.messages(channel).length, 3, 10_000, 'three messages');

    await redis.stop();
    await a.waitReady(503, 10_000);
    // A's publisher connection (which carries history reads) is kept away until its subscriber
    // has reconnected and resubscribed: the order a restart may well take.
    proxy.refuseWhere('hubcast-pub');
    await redis.start();
    const resubscribed = (): number => a.logs.filter((l) => l.msg === 'redis subscriber ready; channels subscribed').length;
    await waitUntil(() => resubscribed() >= 2, { timeoutMs: 15_000, what: "A's subscriber to resubscribe" });
    proxy.refuseWhere(null);
    await a.waitReady(200, 15_000);

    // No message is published on the channel: only the top check can tell the watcher.
    const lost = (await watcher.waitFor((f) => f.op === 'lost' && f.channel === channel, 10_000, 'a lost notice').catch((err: Error) => {
      const warnings = a.logs.filter((l) => (l.level as number) >= 40).map((l) => JSON.stringify(l));
      throw new Error(`${err.message}; A's warnings:\n${warnings.join('\n')}`);
    })) as PositionedFrame & Position;
    assert.notEqual(lost.epoch, start.epoch);
    assert.equal(lost.offset, 0);
  });
});

// Bus integrity against a real Redis: the envelope on the wire, duplicates delivered once, holes
// counted, a restarted gateway without false gaps, and a connected-but-starved subscriber caught
// by the pub/sub probe (not by the health PING), its lost messages counted as gaps.
import assert from 'node:assert/strict';
import { type TestContext, describe, test } from 'node:test';
import { ENVELOPE_BYTES, writeEnvelope } from '../../services/gateway/src/bus/envelope.js';
import { useFixture } from '../helpers/fixture.js';
import type { TestClient } from '../helpers/client.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { type TcpProxy, startProxy } from '../helpers/proxy.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil, within } from '../helpers/wait.js';

function enveloped(origin: number, stream: number, seq: number, channel: string, data: unknown): Buffer {
  const body = JSON.stringify({ op: 'message', channel, data });
  const out = Buffer.alloc(ENVELOPE_BYTES + Buffer.byteLength(body));
  writeEnvelope(out, origin, stream, seq);
  out.write(body, ENVELOPE_BYTES);
  return out;
}

describe('bus integrity', { timeout: 60_000 }, () => {
  const fx = useFixture();
  // These cases are about the envelope, which carries messages while history is off; with
  // history on, offsets and gap repair take its place (test/integration/history-*.test.ts).
  const envelopeGateway = (env: Record<string, string>): Promise<GatewayProcess> => fx.gateway({ HISTORY_SIZE: '0', ...env });

  /** A gateway whose Redis traffic goes through a proxy the test controls, and a direct one sharing its prefix. */
  async function proxied(
    t: TestContext,
    env: Record<string, string>,
  ): Promise<{ proxy: TcpProxy; prefix: string; gateway: GatewayProcess; other: GatewayProcess }> {
    const target = new URL(fx.redis.url);
    const proxy = await startProxy(target.hostname, Number(target.port));
    t.after(() => proxy.close());
    const prefix = uniquePrefix();
    const gateway = await envelopeGateway({ REDIS_URL: proxy.url, REDIS_PREFIX: prefix, ...env });
    const other = await envelopeGateway({ REDIS_PREFIX: prefix });
    return { proxy, prefix, gateway, other };
  }

  /** Publishes on channel and asserts the ack. */
  const publisherOn =
    (publisher: TestClient, channel: string) =>
    async (data: string): Promise<void> => {
      assert.equal((await publisher.request({ op: 'publish', channel, data })).op, 'ack');
    };

  test('every message on Redis carries the envelope; sequences run per (origin, channel)', async (t) => {
    const prefix = uniquePrefix();
    const gateway = await envelopeGateway({ REDIS_PREFIX: prefix });
    const raw = fx.redis.client();
    t.after(() => raw.disconnect());
    const seen: [string, Buffer][] = [];
    raw.on('messageBuffer', (channel: Buffer, message: Buffer) => seen.push([channel.toString(), message]));
    await raw.subscribe(`${prefix}a`, `${prefix}b`);
    const publisher = await fx.connect(gateway.ws());
    for (const [channel, data] of [['a', 1], ['a', 2], ['b', 3], ['a', 4], ['b', 5]] as const) {
      assert.equal((await publisher.request({ op: 'publish', channel, data })).op, 'ack');
    }
    await waitUntil(() => seen.length === 5, { what: '5 messages on the raw subscriber' });
    const fields = seen.map(([channel, m]) => ({
      channel: channel.slice(prefix.length),
      head: [m[0], m[1]],
      origin: m.readUIntBE(2, 6),
      stream: m.readUIntBE(8, 6),
      seq: m.readUIntBE(14, 6),
      body: JSON.parse(m.subarray(ENVELOPE_BYTES).toString()) as { data: number },
    }));
    assert.ok(fields.every((f) => f.head[0] === 0xfe && f.head[1] === 1));
    assert.equal(new Set(fields.map((f) => f.origin)).size, 1, 'one origin: this gateway process');
    const a = fields.filter((f) => f.channel === 'a');
    const b = fields.filter((f) => f.channel === 'b');
    assert.deepEqual(a.map((f) => [f.seq, f.body.data]), [[1, 1], [2, 2], [3, 4]]);
    assert.deepEqual(b.map((f) => [f.seq, f.body.data]), [[1, 3], [2, 5]]);
    assert.equal(new Set(a.map((f) => f.stream)).size, 1);
    assert.notEqual(a[0]!.stream, b[0]!.stream);
  });

  test('a duplicate is delivered once, holes are counted, a message without envelope is not delivered', async (t) => {
    const prefix = uniquePrefix();
    const gateway = await envelopeGateway({ REDIS_PREFIX: prefix });
    const sub = await fx.connect(gateway.ws(['dup']));
    const raw = fx.redis.client();
    t.after(() => raw.disconnect());
    const channel = `${prefix}dup`;
    const origin = 0xabcdef123456;
    for (const seq of [1, 1, 2, 5, 3]) await raw.publish(channel, enveloped(origin, 1, seq, 'dup', seq));
    await raw.publish(channel, JSON.stringify({ op: 'message', channel: 'dup', data: 'no envelope' }));
    await raw.publish(channel, enveloped(origin, 1, 6, 'dup', 6));
    await sub.waitFor((f) => f.data === 6);
    assert.deepEqual(sub.messages('dup').map((f) => f.data), [1, 2, 5, 6], 'once each, in order, nothing foreign');
    const m = await gateway.metrics();
    assert.equal(m.get('hubcast_bus_duplicates_total'), 2, 'the second 1 and the 3 after 5');
    assert.equal(m.get('hubcast_bus_gaps_total'), 2, '3 and 4 were missing when 5 came');
    assert.equal(m.get('hubcast_bus_invalid_total'), 1);
    assert.equal(m.get('hubcast_bus_messages_received_total'), 4, 'only delivered messages reach the hub');
  });

  test('a restarted gateway is a new origin: its numbering starting over is no gap', async () => {
    const prefix = uniquePrefix();
    const receiver = await envelopeGateway({ REDIS_PREFIX: prefix });
    const sub = await fx.connect(receiver.ws(['r']));
    for (const round of [0, 1]) {
      const origin = await envelopeGateway({ REDIS_PREFIX: prefix });
      const publisher = await fx.connect(origin.ws());
      for (let i = 0; i < 3; i++) await publisher.request({ op: 'publish', channel: 'r', data: round * 3 + i });
      await sub.waitFor((f) => f.data === round * 3 + 2);
      assert.notEqual(await origin.kill('SIGKILL'), 0);
    }
    assert.deepEqual(sub.messages('r').map((f) => f.data), [0, 1, 2, 3, 4, 5]);
    assert.equal(await receiver.metric('hubcast_bus_gaps_total'), 0);
    assert.equal(await receiver.metric('hubcast_bus_duplicates_total'), 0);
  });

  test('a connected but starved subscriber: the probe turns readyz 503; what it lost is counted as gaps', async (t) => {
    // A minute-long command timeout: the health PING cannot be what notices the starvation.
    const { proxy, gateway: starved, other } = await proxied(t, {
      REDIS_TIMEOUT_MS: '60000',
      BUS_PROBE_INTERVAL_MS: '200',
      BUS_PROBE_TIMEOUT_MS: '500',
    });
    const sub = await fx.connect(starved.ws(['s']));
    const publish = publisherOn(await fx.connect(other.ws()), 's');
    await publish('before');
    await sub.waitFor((f) => f.data === 'before');
    assert.equal(await starved.metric('hubcast_bus_probe_ok'), 1);

    const [subConn] = proxy.find('hubcast-sub');
    assert.ok(subConn, 'the gateway subscriber connection goes through the proxy');
    subConn.starve();
    await starved.waitReady(503, 10_000);
    let m = await starved.metrics();
    assert.equal(m.get('hubcast_bus_probe_ok'), 0);
    assert.ok(m.get('hubcast_bus_probe_failures_total')! >= 1);
    assert.equal(m.get('hubcast_bus_connected{connection="subscriber"}'), 1, 'still connected: only starved');
    assert.equal(await other.readyz(), 200, 'the other gateway is unaffected');

    // Fed again: what was held back arrives late, nothing is lost, the probe recovers.
    await publish('held');
    subConn.feed();
    await sub.waitFor((f) => f.data === 'held');
    await starved.waitReady(200, 10_000);

    // Starved again and then reset: what sat in the buffers is gone, and counted once a later
    // message from the same origin arrives on the new subscription.
    subConn.starve();
    await starved.waitReady(503, 10_000);
    for (let i = 0; i < 5; i++) await publish(`lost-${i}`);
    subConn.cut();
    await starved.waitReady(200, 15_000);
    await publish('after');
    await within(sub.waitFor((f) => f.data === 'after'), 10_000, 'the message after the reset');
    assert.deepEqual(sub.messages('s').map((f) => f.data), ['before', 'held', 'after']);
    m = await starved.metrics();
    assert.equal(m.get('hubcast_bus_gaps_total'), 5, 'each lost message counted');
    assert.equal(m.get('hubcast_bus_duplicates_total'), 0);
    assert.equal(await other.metric('hubcast_bus_gaps_total'), 0);
  });

  test('a subscriber that answers PING and SUBSCRIBE but gets no message: only the probe sees it; the losses are gaps', async (t) => {
    const { proxy, gateway: deaf, other } = await proxied(t, { BUS_PROBE_INTERVAL_MS: '200', BUS_PROBE_TIMEOUT_MS: '500' });
    const sub = await fx.connect(deaf.ws(['d']));
    const publish = publisherOn(await fx.connect(other.ws()), 'd');
    await publish('first');
    await sub.waitFor((f) => f.data === 'first');

    const [subConn] = proxy.find('hubcast-sub');
    assert.ok(subConn);
    subConn.dropPushes(true);
    await deaf.waitReady(503, 10_000);
    for (let i = 0; i < 3; i++) await publish(`lost-${i}`);
    // A subscribe on the deaf connection is still confirmed: SUBSCRIBE replies pass, pushes do not.
    const late = await fx.connect(deaf.ws());
    assert.equal((await late.request({ op: 'subscribe', channel: 'other' })).op, 'ack');
    // Ten late probes, one per 200 ms after the first 500 ms: over two health PING rounds (one a
    // second), and the PINGs keep succeeding.
    await waitUntil(async () => (await deaf.metric('hubcast_bus_probe_failures_total')) >= 10, { what: '10 late probes' });
    assert.ok(!deaf.logs.some((l) => l.msg === 'redis not answering'), 'the health PING never failed');
    assert.ok(deaf.logs.some((l) => l.msg === 'bus probe did not come back: subscriber starved'));
    assert.equal(await deaf.metric('hubcast_bus_connected{connection="subscriber"}'), 1);
    assert.equal(await deaf.readyz(), 503);

    subConn.dropPushes(false);
    await deaf.waitReady(200, 10_000);
    await publish('last');
    await sub.waitFor((f) => f.data === 'last');
    assert.deepEqual(sub.messages('d').map((f) => f.data), ['first', 'last']);
    assert.ok(subConn.droppedPushes >= 3);
    assert.equal(await deaf.metric('hubcast_bus_gaps_total'), 3, 'the three lost messages counted when the next one came');
  });

  test('not live too early: after a resubscribe, readyz waits for a probe to come back on the new subscription', async (t) => {
    const target = new URL(fx.redis.url);
    const proxy = await startProxy(target.hostname, Number(target.port));
    t.after(() => proxy.close());
    const gateway = await envelopeGateway({
      REDIS_URL: proxy.url,
      REDIS_PREFIX: uniquePrefix(),
      BUS_PROBE_INTERVAL_MS: '200',
      BUS_PROBE_TIMEOUT_MS: '500',
    });
    await fx.connect(gateway.ws(['x']));
    // Every subscriber connection from now on gets its SUBSCRIBE replies but no message.
    proxy.dropPushesWhere('hubcast-sub');
    const [first] = proxy.find('hubcast-sub');
    first!.cut();
    await gateway.waitReady(503, 5000);
    // The new connection subscribes (Redis confirms), yet the gateway must not call itself ready.
    await waitUntil(() => proxy.find('hubcast-sub').length === 1, { what: 'the subscriber to reconnect' });
    const resubscribed = (): boolean => gateway.logs.filter((l) => l.msg === 'redis subscriber ready; channels subscribed').length >= 2;
    await waitUntil(resubscribed, { what: 'the resubscribe to be confirmed' });
    await waitUntil(async () => (await gateway.metric('hubcast_bus_probe_failures_total')) >= 2, { what: 'probes on the new subscription to be late' });
    assert.equal(await gateway.readyz(), 503, 'subscribed but not receiving: not ready');
    proxy.dropPushesWhere(null);
    await gateway.waitReady(200, 5000);
  });

  // A Redis stall past REDIS_TIMEOUT_MS that falls between two health PINGs: the PINGs are all
  // answered in time, so only a retry of the timed-out SUBSCRIBE itself can bring the channel live.
  // The proxy holds the SUBSCRIBE reply from just after one health PING until the next (about a
  // second, against a 400 ms timeout), and lets it through before that PING reaches Redis.
  const STALL_TIMEOUT_MS = 400;

  for (const [what, held] of [['the probe channel', '#probe.'], ['the client channels', 'x']] as const) {
    test(`a resubscribe whose SUBSCRIBE (${what}) times out while PINGs are answered is retried: readyz returns to 200`, async (t) => {
      const { proxy, prefix, gateway, other } = await proxied(t, { REDIS_TIMEOUT_MS: String(STALL_TIMEOUT_MS) });
      const sub = await fx.connect(gateway.ws(['x']));
      const publisher = await fx.connect(other.ws());
      const released = proxy.holdSubscribeReply('hubcast-sub', prefix + held);
      const [first] = proxy.find('hubcast-sub');
      assert.ok(first);
      // Cut just as a health PING goes out: the new connection resubscribes well before the next.
      await first.nextCommand('ping');
      first.cut();
      const heldMs = await within(released, 10_000, 'the held SUBSCRIBE reply to be let through');
      assert.ok(heldMs > STALL_TIMEOUT_MS, `held ${heldMs} ms, past the command timeout`);
      await gateway.waitReady(200, 10_000);
      assert.ok(
        gateway.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('redis subscribe failed') && l.err === 'Command timed out'),
        'the SUBSCRIBE did time out',
      );
      assert.ok(!gateway.logs.some((l) => l.msg === 'redis not answering'), 'no health PING failed');
      assert.equal((await publisher.request({ op: 'publish', channel: 'x', data: 'after' })).op, 'ack');
      await within(sub.waitFor((f) => f.data === 'after'), 10_000, 'a message on the resubscribed channel');
    });
  }

  test('a client SUBSCRIBE that times out while PINGs are answered is retried: the ack comes and messages flow', async (t) => {
    const { proxy, prefix, gateway, other } = await proxied(t, { REDIS_TIMEOUT_MS: String(STALL_TIMEOUT_MS) });
    const client = await fx.connect(gateway.ws());
    const publisher = await fx.connect(other.ws());
    const released = proxy.holdSubscribeReply('hubcast-sub', `${prefix}late`);
    const [subConn] = proxy.find('hubcast-sub');
    assert.ok(subConn);
    await subConn.nextCommand('ping');
    const ack = client.request({ op: 'subscribe', channel: 'late' }, 10_000);
    const heldMs = await within(released, 10_000, 'the held SUBSCRIBE reply to be let through');
    assert.ok(heldMs > STALL_TIMEOUT_MS, `held ${heldMs} ms, past the command timeout`);
    assert.equal((await ack).op, 'ack', 'the subscribe is acked once the retried SUBSCRIBE is confirmed');
    assert.ok(gateway.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('redis subscribe failed') && l.err === 'Command timed out'));
    assert.ok(!gateway.logs.some((l) => l.msg === 'redis not answering'), 'no health PING failed');
    assert.equal(await gateway.readyz(), 200);
    for (const data of [1, 2]) assert.equal((await publisher.request({ op: 'publish', channel: 'late', data })).op, 'ack');
    await within(client.waitFor((f) => f.data === 2), 10_000, 'messages on the channel');
    assert.deepEqual(client.messages('late').map((f) => f.data), [1, 2]);
    assert.equal(await gateway.metric('hubcast_bus_gaps_total'), 0);
  });

  test('unsubscribe then subscribe again: messages still in flight from the old subscription are no baseline, no false gaps', async (t) => {
    // No command times out while the subscriber is held up.
    const { proxy, prefix, gateway, other } = await proxied(t, { REDIS_TIMEOUT_MS: '60000' });
    const client = await fx.connect(gateway.ws(['c']));
    const raw = fx.redis.client();
    t.after(() => raw.disconnect());
    const subscribers = async (): Promise<number> => Number(((await raw.pubsub('NUMSUB', `${prefix}c`)) as [string, number])[1]);
    const publish = publisherOn(await fx.connect(other.ws()), 'c');
    await publish('m1');
    await client.waitFor((f) => f.data === 'm1');

    const [subConn] = proxy.find('hubcast-sub');
    assert.ok(subConn);
    // m2 and m3 are pushed on the old subscription but held on the way, so they arrive after
    // the channel is taken up again.
    subConn.starve();
    await publish('m2');
    await publish('m3');
    assert.equal((await client.request({ op: 'unsubscribe', channel: 'c' })).op, 'ack');
    await waitUntil(async () => (await subscribers()) === 0, { what: 'Redis to drop the subscription' });
    // Published while this gateway did not hold the channel: nobody here is owed these.
    await publish('m4');
    await publish('m5');
    const resubscribed = client.request({ op: 'subscribe', channel: 'c' });
    await waitUntil(async () => (await subscribers()) === 1, { what: 'Redis to subscribe the channel again' });
    await publish('m6');
    subConn.feed();
    assert.equal((await resubscribed).op, 'ack');
    await publish('m7');
    await client.waitFor((f) => f.data === 'm7');
    assert.equal(await gateway.metric('hubcast_bus_gaps_total'), 0, 'm4 and m5 were not owed');

    // The new subscription is tracked: a real loss on it still counts.
    subConn.dropPushes(true);
    await publish('m8');
    await waitUntil(() => subConn.droppedPushes === 1, { what: 'the proxy to drop m8' });
    subConn.dropPushes(false);
    await publish('m9');
    await client.waitFor((f) => f.data === 'm9');
    // m2 and m3 were published while the client held the channel: delivered, once.
    assert.deepEqual(client.messages('c').map((f) => f.data), ['m1', 'm2', 'm3', 'm6', 'm7', 'm9']);
    const m = await gateway.metrics();
    assert.equal(m.get('hubcast_bus_gaps_total'), 1, 'only m8');
    assert.equal(m.get('hubcast_bus_duplicates_total'), 0);
  });
});

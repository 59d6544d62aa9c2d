// The seam (issue 10, Proof): a client subscribed on gateway A disconnects while a publisher keeps
// publishing at a steady rate; it reconnects to gateway B and subscribes with `since`: the ack
// says recovered:true, then come exactly the messages it missed, then the live ones, each offset
// once, in order, with nothing lost or repeated between what it got on A and what it got on B.
// And the seam's hard case, made certain with a proxy: the history read (on the command
// connection) is ahead of the gateway's pub/sub stream, so the replayed messages' live copies
// arrive after the ack: they must not be sent again.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useFixture } from '../helpers/fixture.js';
import { LoadPublisher } from '../helpers/load.js';
import { startProxy } from '../helpers/proxy.js';
import { type Position, messagesOf, sequenceProblems, subscribe } from '../helpers/positions.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil, within } from '../helpers/wait.js';

const CHANNEL = 'seam';

const key = (data: unknown): string => {
  const d = data as { p: string; n: number };
  return `${d.p}:${d.n}`;
};

describe('recovery across gateways: the seam', { timeout: 90_000 }, () => {
  const fx = useFixture();

  test('missed messages, then live ones, each offset once, in order', async (t) => {
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all([fx.gateway({ REDIS_PREFIX: prefix }), fx.gateway({ REDIS_PREFIX: prefix })]);
    const publisher = await LoadPublisher.connect('pub', a.ws());
    t.after(() => publisher.close());

    const first = await fx.connect(a.ws());
    const start = await subscribe(first, CHANNEL);
    assert.equal(start.recovered, undefined, 'no recovered flag without since');
    publisher.start([CHANNEL], 5);
    await first.waitForCount(() => first.messages(CHANNEL).length, 30, 15_000, '30 messages on A');
    first.close();
    await within(first.closed, 5000, 'the first connection to close');
    const onA = messagesOf(first.frames, CHANNEL);
    const last: Position = { offset: onA.at(-1)!.offset, epoch: onA.at(-1)!.epoch };

    // Published while the client is away: at least 40, far fewer than HISTORY_SIZE (100).
    const acceptedAtClose = publisher.count('accepted');
    await waitUntil(() => publisher.count('accepted') >= acceptedAtClose + 40, { timeoutMs: 15_000, what: '40 publishes while away' });

    const second = await fx.connect(b.ws());
    const ack = await subscribe(second, CHANNEL, last);
    assert.equal(ack.recovered, true, `recovered from ${JSON.stringify(last)}: ${JSON.stringify(ack)}`);
    assert.equal(ack.epoch, last.epoch, 'the same epoch');
    const missed = ack.offset - last.offset;
    assert.ok(missed >= 40, `the ack is at the top: ${missed} missed`);
    assert.equal(second.frames.indexOf(ack.frame), 0, 'the ack comes before any message');

    await second.waitForCount(() => second.messages(CHANNEL).length, missed + 30, 15_000, 'the missed messages and 30 live ones on B');
    publisher.stop();
    await publisher.settled();
    const sent = [...publisher.sent.values()];
    assert.ok(sent.every((s) => s.fate === 'accepted'), 'a healthy cluster accepts every publish');
    const lastKey = sent.at(-1)!.key;
    await second.waitFor((f) => f.op === 'message' && key(f.data) === lastKey, 10_000, 'the last publish on B');

    const onB = messagesOf(second.frames, CHANNEL);
    assert.deepEqual(sequenceProblems(onA, start, 'on A'), []);
    assert.deepEqual(sequenceProblems(onB, last, 'on B'), []);
    assert.equal(onB.filter((m) => m.offset <= ack.offset).length, missed, 'exactly the missed messages replayed');
    // Every publish reached the client exactly once over its two connections, in publish order.
    const got = [...onA, ...onB].map((m) => key(m.data));
    assert.deepEqual(got, sent.map((s) => s.key));
    assert.equal(second.frames.filter((f) => f.op === 'lost').length, 0, 'no lost notice');

    assert.equal(await b.metric('hubcast_recoveries_total{result="recovered"}'), 1);
    assert.equal(await b.metric('hubcast_bus_gaps_total'), 0);
    t.diagnostic(`seam: published=${sent.length} on A=${onA.length} missed=${missed} replayed=${missed} live on B=${onB.length - missed} duplicates=0 lost=0`);
  });

  test('live copies of replayed messages, arriving after the read, are not sent again', async (t) => {
    const url = new URL(fx.redis.url);
    const proxy = await startProxy(url.hostname, Number(url.port));
    t.after(() => proxy.close());
    // A long health timeout and no probe in the window: B's starved subscriber stays "up".
    const gateway = await fx.gateway({
      REDIS_URL: proxy.url,
      REDIS_PREFIX: uniquePrefix(),
      REDIS_TIMEOUT_MS: '60000',
      BUS_PROBE_INTERVAL_MS: '60000',
      BUS_PROBE_TIMEOUT_MS: '60000',
    });
    const holder = await fx.connect(gateway.ws());
    const start = await subscribe(holder, CHANNEL);
    const publisher = await fx.connect(gateway.ws());
    let sent = 0;
    const publish = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) assert.equal((await publisher.request({ op: 'publish', channel: CHANNEL, data: ++sent })).op, 'ack');
    };
    await publish(5);
    await holder.waitForCount(() => holder.messages(CHANNEL).length, 5, 10_000, 'five messages');
    const since: Position = { offset: start.offset + 5, epoch: start.epoch };

    // The gateway's pub/sub stream stops here; Redis (and so every history read) goes on.
    const [sub] = proxy.find('hubcast-sub');
    assert.ok(sub, 'the subscriber connection goes through the proxy');
    sub.starve();
    await publish(3);
    const late = await fx.connect(gateway.ws());
    const ack = await subscribe(late, CHANNEL, since);
    assert.deepEqual([ack.recovered, ack.offset], [true, since.offset + 3]);
    await late.waitForCount(() => late.messages(CHANNEL).length, 3, 10_000, 'the three replayed');

    // The stream catches up: 6, 7 and 8 arrive live too, then 9.
    sub.feed();
    await holder.waitForCount(() => holder.messages(CHANNEL).length, 8, 10_000, 'the held messages at the holder');
    await publish(1);
    await late.waitFor((f) => f.op === 'message' && f.data === 9, 10_000, 'the next live message');
    assert.deepEqual(
      messagesOf(late.frames, CHANNEL).map((m) => m.offset),
      [since.offset + 1, since.offset + 2, since.offset + 3, since.offset + 4],
      'each offset once: the replay, then only what is after the ack',
    );
    assert.deepEqual(sequenceProblems(messagesOf(holder.frames, CHANNEL), start, 'holder'), []);
  });
});

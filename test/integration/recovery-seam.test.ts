// The seam (issue 10, Proof): a client subscribed on gateway A disconnects while a publisher keeps
// publishing at a steady rate; it reconnects to gateway B and subscribes with `since`: the ack
// says recovered:true, then come exactly the messages it missed, then the live ones, each offset
// once, in order, with nothing lost or repeated between what it got on A and what it got on B.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useFixture } from '../helpers/fixture.js';
import { LoadPublisher } from '../helpers/load.js';
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
});

// Delivery across gateways through a real Redis: exactly once, in order, and unsubscribe
// releases the Redis subscription.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

describe('cluster of three gateways on one Redis', { timeout: 60_000 }, () => {
  const fx = useFixture();
  const prefix = uniquePrefix();
  let gateways: GatewayProcess[] = [];
  const connect = (url: string): Promise<TestClient> => fx.connect(url);

  before(async () => {
    gateways = await Promise.all([0, 1, 2].map(() => fx.gateway({ REDIS_PREFIX: prefix })));
  });

  test('a message published on any gateway reaches every subscriber on every gateway exactly once', async () => {
    const channel = 'room.exactly-once';
    const subscribers: TestClient[] = [];
    for (const g of gateways) {
      subscribers.push(await connect(g.ws([channel])), await connect(g.ws([channel])));
    }
    const bystander = await connect(gateways[0]!.ws(['room.other']));
    const publishers = await Promise.all(gateways.map((g) => connect(g.ws())));

    const perPublisher = 20;
    for (let n = 0; n < perPublisher; n++) {
      publishers.forEach((p, i) => p.send({ op: 'publish', channel, data: { from: i, n } }));
    }
    // One HTTP publish through each gateway too.
    for (const [i, g] of gateways.entries()) {
      const res = await fetch(`${g.http}/publish`, {
        method: 'POST',
        body: JSON.stringify({ channel, data: { from: `http${i}`, n: 0 } }),
      });
      assert.equal(res.status, 202);
    }

    const expected = perPublisher * publishers.length + gateways.length;
    for (const s of subscribers) {
      await s.waitForCount(() => s.messages(channel).length, expected, 10_000, `${expected} messages`);
    }
    // Give a duplicate the chance to show up: a sentinel published after everything else.
    publishers[0]!.send({ op: 'publish', channel, data: { from: 'sentinel' } });
    for (const s of subscribers) {
      await s.waitFor((f) => (f.data as { from?: unknown })?.from === 'sentinel');
      const keys = s.messages(channel).map((m) => JSON.stringify(m.data));
      assert.equal(keys.length, expected + 1, 'no message arrives twice');
      assert.equal(new Set(keys).size, keys.length, 'no duplicates');
    }
    assert.equal(bystander.messages().length, 0, 'a client on another channel receives nothing');
  });

  test('messages from one publishing connection arrive in publish order', async () => {
    const channel = 'room.order';
    const subscribers = await Promise.all(gateways.map((g) => connect(g.ws([channel]))));
    const publishers = await Promise.all([connect(gateways[0]!.ws()), connect(gateways[2]!.ws())]);
    const count = 300;
    for (let n = 0; n < count; n++) {
      publishers.forEach((p, i) => p.send({ op: 'publish', channel, data: { p: i, n } }));
    }
    for (const s of subscribers) {
      await s.waitForCount(() => s.messages(channel).length, count * 2, 15_000, `${count * 2} ordered messages`);
      for (const p of [0, 1]) {
        const seq = s
          .messages(channel)
          .map((m) => m.data as { p: number; n: number })
          .filter((d) => d.p === p)
          .map((d) => d.n);
        assert.deepEqual(seq, Array.from({ length: count }, (_, n) => n), `publisher ${p} in order`);
      }
    }
  });

  test('one Redis subscription per gateway and channel, released when the last local client leaves', async () => {
    const channel = 'room.refcount';
    // With history on (the default) a channel's pub/sub name carries its hash tag.
    const redisChannel = `${prefix}{${channel}}`;
    const cmd = fx.redis.client();
    const numsub = async (): Promise<number> => {
      const reply = (await cmd.pubsub('NUMSUB', redisChannel)) as [string, number];
      return Number(reply[1]);
    };

    const a1 = await connect(gateways[0]!.ws([channel]));
    const a2 = await connect(gateways[0]!.ws());
    assert.equal((await a2.request({ op: 'subscribe', channel })).op, 'ack');
    const b1 = await connect(gateways[1]!.ws([channel]));
    assert.equal(await numsub(), 2, 'two gateways, one Redis subscription each');

    // a1 leaves; a2 still holds gateway 0's subscription.
    assert.equal((await a1.request({ op: 'unsubscribe', channel })).op, 'ack');
    assert.equal(await numsub(), 2);
    const publisher = await connect(gateways[2]!.ws());
    await publisher.request({ op: 'publish', channel, data: 'one' });
    await a2.waitFor((f) => f.data === 'one');
    await b1.waitFor((f) => f.data === 'one');

    // Unsubscribe stops delivery: a sentinel on a channel a1 still holds arrives, 'one' never did.
    await a1.request({ op: 'subscribe', channel: 'room.sentinel' });
    await publisher.request({ op: 'publish', channel: 'room.sentinel', data: 'sentinel' });
    await a1.waitFor((f) => f.data === 'sentinel');
    assert.equal(a1.messages(channel).length, 0, 'an unsubscribed client receives nothing more');

    // The last local client of gateway 0 leaves: its Redis subscription goes.
    a2.close();
    await waitUntil(async () => (await numsub()) === 1, { what: 'gateway 0 to unsubscribe from Redis' });
    await b1.request({ op: 'unsubscribe', channel });
    await waitUntil(async () => (await numsub()) === 0, { what: 'gateway 1 to unsubscribe from Redis' });
  });
});

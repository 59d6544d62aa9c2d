// Recovery that cannot be whole is refused whole (issue 10, Proof): more missed than HISTORY_SIZE,
// more than RECOVERY_MAX_MESSAGES, a wrong epoch, an offset beyond the top, and expired history
// (a small HISTORY_TTL_S) each get recovered:false with the channel's current position and nothing
// replayed: the next message the client sees is the one after the ack. A malformed since is
// invalid_message. Each outcome is counted under its result label.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { type Ack, FOREIGN_EPOCH, type Position, messagesOf, subscribe } from '../helpers/positions.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

describe('recovery refused: recovered:false, nothing replayed', { timeout: 90_000 }, () => {
  const fx = useFixture();

  async function publish(publisher: TestClient, channel: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const reply = await publisher.request({ op: 'publish', channel, data: { i } });
      assert.equal(reply.op, 'ack', JSON.stringify(reply));
    }
  }

  /** A position on the channel after `published` messages, as a client that got them all holds it. */
  async function positionAfter(gateway: GatewayProcess, publisher: TestClient, channel: string, published: number): Promise<Position> {
    const watcher = await fx.connect(gateway.ws());
    const start = await subscribe(watcher, channel);
    await publish(publisher, channel, published);
    await watcher.waitForCount(() => watcher.messages(channel).length, published, 10_000, `${published} messages on ${channel}`);
    const last = messagesOf(watcher.frames, channel).at(-1)!;
    assert.equal(last.offset, start.offset + published);
    watcher.close();
    return { offset: last.offset, epoch: last.epoch };
  }

  /**
   * Subscribes with since and expects recovered:false at `expected` (epoch too unless given as
   * null: a new one); then one more publish must be the first message this client sees.
   */
  async function refused(gateway: GatewayProcess, publisher: TestClient, channel: string, since: unknown, expected: { offset: number; epoch: string | null }): Promise<Ack> {
    const client = await fx.connect(gateway.ws());
    const ack = await subscribe(client, channel, since as Position);
    assert.equal(ack.recovered, false, `since ${JSON.stringify(since)}: ${JSON.stringify(ack)}`);
    assert.equal(ack.offset, expected.offset, 'the ack carries the current top');
    if (expected.epoch !== null) assert.equal(ack.epoch, expected.epoch, 'the ack carries the current epoch');
    await publish(publisher, channel, 1);
    await client.waitForCount(() => client.messages(channel).length, 1, 10_000, 'the next live message');
    assert.deepEqual(
      messagesOf(client.frames, channel).map((m) => [m.offset, m.epoch]),
      [[ack.offset + 1, ack.epoch]],
      'nothing replayed: the first message is the one after the ack',
    );
    assert.equal(client.frames.filter((f) => f.op === 'lost').length, 0);
    return ack;
  }

  /** A gateway with these settings, and a client that missed `missed` messages: refused, counted under result. */
  async function missedTooMany(env: Record<string, string>, channel: string, missed: number, result: string): Promise<{ gateway: GatewayProcess; publisher: TestClient }> {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), ...env });
    const publisher = await fx.connect(gateway.ws());
    const held = await positionAfter(gateway, publisher, channel, 3);
    await publish(publisher, channel, missed);
    await refused(gateway, publisher, channel, held, { offset: held.offset + missed, epoch: held.epoch });
    assert.equal(await gateway.metric(`hubcast_recoveries_total{result="${result}"}`), 1);
    return { gateway, publisher };
  }

  test('more missed than HISTORY_SIZE', async () => {
    const { gateway, publisher } = await missedTooMany({ HISTORY_SIZE: '10' }, 'trimmed', 11, 'missing');

    // Ten missed is exactly what history holds: recovered, with all ten.
    const near = await positionAfter(gateway, publisher, 'edge', 2);
    await publish(publisher, 'edge', 10);
    const client = await fx.connect(gateway.ws());
    const ack = await subscribe(client, 'edge', near);
    assert.equal(ack.recovered, true);
    await client.waitForCount(() => client.messages('edge').length, 10, 10_000, 'ten replayed');
    assert.deepEqual(
      messagesOf(client.frames, 'edge').map((m) => m.offset),
      Array.from({ length: 10 }, (_, i) => near.offset + 1 + i),
    );
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="recovered"}'), 1);
  });

  test('more missed than RECOVERY_MAX_MESSAGES', async () => {
    await missedTooMany({ RECOVERY_MAX_MESSAGES: '5' }, 'many', 6, 'too_many');
  });

  test('a wrong epoch, an offset beyond the top, a malformed since', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix() });
    const publisher = await fx.connect(gateway.ws());
    const held = await positionAfter(gateway, publisher, 'news', 4);
    await refused(gateway, publisher, 'news', { offset: held.offset, epoch: FOREIGN_EPOCH }, { offset: held.offset, epoch: held.epoch });
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="epoch_mismatch"}'), 1);
    // One more was published by refused(): the top is held.offset + 1.
    await refused(gateway, publisher, 'news', { offset: held.offset + 50, epoch: held.epoch }, { offset: held.offset + 1, epoch: held.epoch });
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="beyond_top"}'), 1);

    const client = await fx.connect(gateway.ws());
    for (const since of [
      'yesterday',
      { offset: -1, epoch: held.epoch },
      { offset: 1.5, epoch: held.epoch },
      { offset: '3', epoch: held.epoch },
      { offset: 3 },
      { epoch: held.epoch },
      { offset: 3, epoch: 'not an epoch!' },
      { offset: 3, epoch: 7 },
    ]) {
      const reply = await client.request({ op: 'subscribe', channel: 'news', since });
      assert.deepEqual([reply.op, reply.code], ['error', 'invalid_message'], `since ${JSON.stringify(since)}`);
    }
    // Still connected and served: a valid subscribe is acked.
    assert.equal((await subscribe(client, 'news')).offset, held.offset + 2);
  });

  test('expired history (HISTORY_TTL_S): a new epoch, recovered:false', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), HISTORY_TTL_S: '2' });
    const publisher = await fx.connect(gateway.ws());
    const held = await positionAfter(gateway, publisher, 'brief', 3);
    // History lives HISTORY_TTL_S after the last publish; a fresh subscribe shows when it is gone.
    await waitUntil(
      async () => {
        const probe = await fx.connect(gateway.ws());
        const ack = await subscribe(probe, 'brief');
        probe.close();
        return ack.epoch !== held.epoch;
      },
      { timeoutMs: 10_000, intervalMs: 250, what: 'the history of "brief" to expire' },
    );
    const ack = await refused(gateway, publisher, 'brief', held, { offset: 0, epoch: null });
    assert.notEqual(ack.epoch, held.epoch, 'a new epoch');
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="epoch_mismatch"}'), 1);
  });
});

// Gateways repair bus gaps themselves (issue 10, Proof): CLIENT KILL TYPE pubsub cuts every
// gateway's subscriber connection while gateway B keeps publishing at a steady rate. Redis pub/sub
// drops what is published until each resubscribes; the gateways read those offsets from history
// and deliver them in order before any later message. Every client, on A and on B, receives every
// accepted publish exactly once, in order, with offsets one by one; the repaired counter moves;
// nothing is unrepaired, lost or unaccounted.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { LoadPublisher } from '../helpers/load.js';
import { type Ack, messagesOf, sequenceProblems, subscribe } from '../helpers/positions.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const CHANNELS = ['repair.a', 'repair.b'] as const;
const MIN_KILLS = 3;
const MAX_KILLS = 10;

interface Watched {
  readonly where: string;
  readonly client: TestClient;
  readonly acks: Map<string, Ack>;
}

const key = (data: unknown): string => {
  const d = data as { p: string; n: number };
  return `${d.p}:${d.n}`;
};

describe('bus gaps repaired from history', { timeout: 120_000 }, () => {
  const fx = useFixture();

  async function watchers(gateway: GatewayProcess, where: string, n: number): Promise<Watched[]> {
    const out: Watched[] = [];
    for (let i = 0; i < n; i++) {
      const client = await fx.connect(gateway.ws());
      const acks = new Map<string, Ack>();
      for (const channel of CHANNELS) acks.set(channel, await subscribe(client, channel));
      out.push({ where: `${where} client ${i}`, client, acks });
    }
    return out;
  }

  const flowing = (all: readonly Watched[], more: number): Promise<unknown> =>
    Promise.all(all.map((w) => w.client.waitForCount(() => w.client.frames.length, w.client.frames.length + more, 20_000, `${more} more at ${w.where}`)));

  test('CLIENT KILL TYPE pubsub under load: every message, in order, once', async (t) => {
    const prefix = uniquePrefix();
    const env = { REDIS_PREFIX: prefix, BUS_PROBE_INTERVAL_MS: '500' };
    const [a, b] = await Promise.all([fx.gateway(env), fx.gateway(env)]);
    const onA = await watchers(a, 'A', 3);
    const onB = await watchers(b, 'B', 1);
    const all = [...onA, ...onB];
    const publisher = await LoadPublisher.connect('pub', b.ws());
    t.after(() => publisher.close());
    const redis = fx.redis.client();

    publisher.start(CHANNELS, 5);
    let kills = 0;
    while (kills < MIN_KILLS || ((await a.metric('hubcast_bus_gaps_repaired_total')) === 0 && kills < MAX_KILLS)) {
      await flowing(all, 100);
      const reconnects = await a.metric('hubcast_bus_reconnects_total{connection="subscriber"}');
      const killed = (await redis.client('KILL', 'TYPE', 'pubsub')) as number;
      assert.ok(killed >= 2, `both gateways' subscriber connections killed (${killed})`);
      kills++;
      await waitUntil(async () => (await a.metric('hubcast_bus_reconnects_total{connection="subscriber"}')) > reconnects, {
        timeoutMs: 10_000,
        what: 'A to reconnect its subscriber',
      });
      await Promise.all([a.waitReady(200, 15_000), b.waitReady(200, 15_000)]);
    }
    await flowing(all, 100);
    publisher.stop();
    await publisher.settled();

    const sent = [...publisher.sent.values()];
    const accepted = sent.filter((s) => s.fate === 'accepted');
    assert.equal(accepted.length, sent.length, 'the publisher connection was never cut: every publish accepted');
    for (const channel of CHANNELS) {
      const lastKey = accepted.filter((s) => s.channel === channel).at(-1)!.key;
      for (const w of all) await w.client.waitFor((f) => f.channel === channel && f.op === 'message' && key(f.data) === lastKey, 15_000, `${lastKey} at ${w.where}`);
    }

    let delivered = 0;
    for (const w of all) {
      for (const channel of CHANNELS) {
        const messages = messagesOf(w.client.frames, channel);
        assert.deepEqual(sequenceProblems(messages, w.acks.get(channel)!, `${w.where} ${channel}`), []);
        assert.deepEqual(
          messages.map((m) => key(m.data)),
          accepted.filter((s) => s.channel === channel).map((s) => s.key),
          `${w.where} ${channel}: every accepted publish once, in order`,
        );
        delivered += messages.length;
      }
      assert.equal(w.client.frames.filter((f) => f.op === 'lost').length, 0, `${w.where}: no lost notice`);
    }

    const repaired = await a.metric('hubcast_bus_gaps_repaired_total');
    assert.ok(repaired > 0, `A repaired gaps from history (${kills} kills)`);
    for (const g of [a, b]) {
      assert.equal(await g.metric('hubcast_bus_gaps_total'), 0, 'no unrepaired gap');
      assert.equal(await g.metric('hubcast_bus_lost_total'), 0, 'nothing lost');
    }
    const expected = accepted.length * all.length;
    assert.equal(delivered, expected, 'unaccounted = 0');
    t.diagnostic(
      `bus repair: kills=${kills} publishes accepted=${accepted.length}; deliveries expected=${expected} delivered=${delivered} ` +
        `repaired on A=${repaired} on B=${await b.metric('hubcast_bus_gaps_repaired_total')} unrepaired=0 lost=0 duplicates=0 unaccounted=${expected - delivered}`,
    );
  });
});

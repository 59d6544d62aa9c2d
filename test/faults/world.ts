// A fault scenario's cluster: gateways on one Redis, each with subscriber clients on every load
// channel and one steady publisher, plus the steps every scenario shares.
import type { TestContext } from 'node:test';
import type { TestClient } from '../helpers/client.js';
import type { Fixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { type GatewayView, type Ledger, account, figures } from '../helpers/ledger.js';
import { LoadPublisher } from '../helpers/load.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

export const CHANNELS = ['load.a', 'load.b'] as const;

export interface Member {
  readonly name: string;
  readonly gateway: GatewayProcess;
  readonly subscribers: TestClient[];
  readonly publisher: LoadPublisher;
}

/** Starts the gateways (in parallel), their subscribers and publishers; cleanup goes to t.after at once. */
export async function cluster(
  t: TestContext,
  fx: Fixture,
  names: readonly string[],
  options: { env?: Record<string, string>; subscribers?: number } = {},
): Promise<Member[]> {
  const prefix = uniquePrefix();
  const gateways = await Promise.all(names.map(() => fx.gateway({ REDIS_PREFIX: prefix, ...options.env })));
  const members: Member[] = [];
  for (const [i, name] of names.entries()) {
    const gateway = gateways[i]!;
    const subscribers: TestClient[] = [];
    for (let s = 0; s < (options.subscribers ?? 4); s++) subscribers.push(await fx.connect(gateway.ws([...CHANNELS])));
    const publisher = await LoadPublisher.connect(name, gateway.ws());
    t.after(() => publisher.close());
    members.push({ name, gateway, subscribers, publisher });
  }
  return members;
}

/**
 * Each publisher's first message on each channel reaches every subscriber: from then on every
 * gateway has a baseline for every (origin, channel), so any later loss is a counted gap.
 */
export async function warmUp(members: readonly Member[]): Promise<void> {
  await deliverOneEach(members, members);
}

/** Each live publisher sends one more message per channel and every watcher gets it: any loss before is now seen. */
export async function flush(publishersOf: readonly Member[], watchers: readonly Member[]): Promise<void> {
  await deliverOneEach(publishersOf, watchers);
}

async function deliverOneEach(from: readonly Member[], to: readonly Member[]): Promise<void> {
  const keys: string[] = [];
  for (const m of from) {
    for (const channel of CHANNELS) {
      const sent = await m.publisher.publishAndWait(channel);
      if (sent.fate !== 'accepted') throw new Error(`${sent.key} was ${sent.fate}; the cluster should be healthy here`);
      keys.push(sent.key);
    }
  }
  for (const m of to) {
    for (const client of m.subscribers) {
      for (const key of keys) {
        const [p, n] = key.split(':');
        await client.waitFor((f) => {
          const d = f.data as { p?: string; n?: number } | undefined;
          return d?.p === p && d?.n === Number(n);
        }, 15_000, `${key} at ${m.name}`);
      }
    }
  }
}

/** Resolves once every client has received `more` frames beyond what it has now: the load flows. */
export async function flowing(members: readonly Member[], more: number): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const m of members) {
    for (const c of m.subscribers) {
      const target = c.frames.length + more;
      waits.push(c.waitForCount(() => c.frames.length, target, 20_000, `${more} more messages at ${m.name}`));
    }
  }
  await Promise.all(waits);
}

/** Resolves once every publisher has had `more` publishes refused beyond what it has now: the outage is felt. */
export async function refusing(members: readonly Member[], more: number): Promise<void> {
  await Promise.all(
    members.map((m) => {
      const target = m.publisher.count('not_sent') + more;
      return waitUntil(() => m.publisher.count('not_sent') >= target, { timeoutMs: 10_000, what: `${more} refusals at ${m.name}` });
    }),
  );
}

/** Stops every publisher and waits for the fate of everything sent. */
export async function settle(members: readonly Member[]): Promise<void> {
  for (const m of members) m.publisher.stop();
  await Promise.all(members.map((m) => m.publisher.settled()));
}

/** Accounts over the members whose clients stayed connected, and reports the figures. */
export async function ledger(t: TestContext, scenario: string, all: readonly Member[], survivors: readonly Member[]): Promise<Ledger> {
  const views: GatewayView[] = survivors.map((m) => ({ name: m.name, gateway: m.gateway, clients: m.subscribers }));
  const result = await account(
    all.map((m) => m.publisher),
    views,
  );
  t.diagnostic(figures(scenario, result));
  for (const [name, f] of Object.entries(result.perGateway)) {
    t.diagnostic(`  ${name}: expected=${f.expected} delivered=${f.delivered} dropped=${f.dropped} gaps=${f.gaps} lost_told=${f.lostTold} unconfirmed_arrived=${f.unconfirmedArrived} unaccounted=${f.unaccounted}`);
  }
  return result;
}

// Fault: a rolling restart of all three gateways under load (issue 10, Proof). The loopback
// cluster (tools/cluster: Redis, three gateways, the real HAProxy from deploy/haproxy, Prometheus);
// clients connect through HAProxy and subscribe two channels; a steady publisher posts through
// HAProxy. Each gateway in turn gets SIGTERM, drains, closes its clients with 1001 and exits; a
// replacement starts on the same address and is ready before the next. The clients reconnect
// through HAProxy and resubscribe with since. At the end every client's sequence on each channel
// is complete and in order: zero messages lost end to end, not only zero unaccounted.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { startCluster } from '../../tools/cluster/src/cluster.js';
import { sequenceProblems } from '../helpers/positions.js';
import { ResumingClient } from '../helpers/resuming.js';
import { waitUntil } from '../helpers/wait.js';

const CHANNELS = ['roll.a', 'roll.b'] as const;
const CLIENTS = 6;
const PUBLISH_EVERY_MS = 5;
// Longer than HAProxy needs to see /readyz 503 (inter 1s, fall 2), so most reconnects land on a
// gateway that is up; the rest are refused and retried.
const DRAIN_MS = 2500;

interface Published {
  readonly n: number;
  readonly channel: string;
  /** accepted: 202. unknown: anything else (refused, or cut off): it may or may not have been published. */
  fate: 'pending' | 'accepted' | 'unknown';
}

/** POST /publish through the load balancer, one at a time (so in order), until stopped. */
class HttpPublisher {
  readonly sent: Published[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly lb: string) {
    this.done = this.loop();
  }

  count(fate: Published['fate']): number {
    return this.sent.filter((s) => s.fate === fate).length;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const p: Published = { n: this.sent.length + 1, channel: CHANNELS[this.sent.length % CHANNELS.length]!, fate: 'pending' };
      this.sent.push(p);
      try {
        const res = await fetch(`${this.lb}/publish`, {
          method: 'POST',
          body: JSON.stringify({ channel: p.channel, data: { n: p.n } }),
          signal: AbortSignal.timeout(5000),
        });
        await res.arrayBuffer();
        p.fate = res.status === 202 ? 'accepted' : 'unknown';
      } catch {
        p.fate = 'unknown';
      }
      await sleep(PUBLISH_EVERY_MS);
    }
  }
}

describe('fault: rolling restart of three gateways behind HAProxy', { timeout: 90_000 }, () => {
  test('every client gets every accepted message, in order, once: zero lost end to end', async (t) => {
    const started = Date.now();
    const cluster = await startCluster({ gatewayEnv: { DRAIN_MS: String(DRAIN_MS), LOG_LEVEL: 'warn', BUS_PROBE_INTERVAL_MS: '500' } });
    t.after(() => cluster.stop());
    const url = `${cluster.lb.replace('http://', 'ws://')}/ws`;
    const clients: ResumingClient[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = new ResumingClient(`client ${i}`, url, CHANNELS);
      t.after(() => c.stop());
      await c.start();
      clients.push(c);
    }
    const total = (c: ResumingClient): number => CHANNELS.reduce((sum, ch) => sum + c.messages.get(ch)!.length, 0);
    const flowing = (more: number): Promise<unknown> =>
      Promise.all(clients.map((c) => {
        const target = total(c) + more;
        return c.until(() => total(c) >= target, 20_000, `${more} more messages at ${c.name}`);
      }));

    const publisher = new HttpPublisher(cluster.lb);
    t.after(() => publisher.stop());
    await flowing(50);
    const exits: (number | string)[] = [];
    for (let i = 0; i < cluster.gateways.length; i++) {
      exits.push(await cluster.restartGateway(i));
      await waitUntil(async () => (await cluster.lbServers()).filter((s) => s.status === 'UP').length === cluster.gateways.length, {
        timeoutMs: 15_000,
        what: `HAProxy to see the replacement of gw${i + 1} UP`,
      });
      await Promise.all(clients.map((c) => c.ready()));
      await flowing(50);
    }
    await publisher.stop();

    const accepted = publisher.sent.filter((s) => s.fate === 'accepted');
    const published = new Set(publisher.sent.map((s) => s.n));
    for (const channel of CHANNELS) {
      const last = accepted.filter((s) => s.channel === channel).at(-1)!.n;
      for (const c of clients) {
        await c.until(() => c.messages.get(channel)!.some((m) => (m.data as { n: number }).n === last), 15_000, `${c.name}: the last publish on ${channel}`);
      }
    }

    let delivered = 0;
    let duplicates = 0;
    let replayed = 0;
    let resubscribes = 0;
    for (const c of clients) {
      for (const channel of CHANNELS) {
        const messages = c.messages.get(channel)!;
        const problems = sequenceProblems(messages, c.firstAck(channel), `${c.name} ${channel}`);
        if (problems.length > 0) {
          // The events of this channel around the first problem, for the failure to explain itself.
          const lines = c.trace.filter((l) => l.includes(` ${channel} `) || l.includes('close'));
          const at = lines.findIndex((l) => l.includes(`offset=${/offset (\d+)/.exec(problems[0]!)?.[1]} `));
          for (const l of lines.slice(Math.max(0, at - 30), at + 30)) t.diagnostic(`${c.name}: ${l}`);
        }
        assert.deepEqual(problems, [], 'complete and in order');
        const got = messages.map((m) => (m.data as { n: number }).n);
        duplicates += got.length - new Set(got).size;
        for (const n of got) assert.ok(published.has(n), `${c.name} got ${n}, which nobody published`);
        const want = accepted.filter((s) => s.channel === channel).map((s) => s.n);
        const have = new Set(got);
        assert.deepEqual(want.filter((n) => !have.has(n)), [], `${c.name} ${channel}: every accepted publish`);
        const wanted = new Set(want);
        assert.deepEqual(got.filter((n) => wanted.has(n)), want, `${c.name} ${channel}: in publish order`);
        delivered += want.length;
      }
      for (const r of c.acks.filter((a) => a.since !== undefined)) {
        resubscribes++;
        assert.equal(r.ack.recovered, true, `${c.name} resubscribed ${r.channel} from ${JSON.stringify(r.since)}: ${JSON.stringify(r.ack)}`);
        replayed += r.ack.offset! - r.since!.offset;
      }
      assert.deepEqual(c.losts, [], `${c.name}: no lost notice`);
      assert.deepEqual(c.errors, [], `${c.name}: no error frame`);
      assert.ok(c.closes.filter((code) => code === 1001).length >= 1, `${c.name} was drained at least once: ${c.closes.join(',')}`);
    }
    assert.deepEqual(exits, [0, 0, 0], 'each gateway drained and exited 0');
    const expected = accepted.length * CLIENTS;
    assert.equal(delivered, expected);
    assert.equal(duplicates, 0);
    assert.ok(replayed > 0, 'clients missed messages while reconnecting, and got them from history');

    const reconnects = clients.reduce((sum, c) => sum + c.closes.length, 0);
    t.diagnostic(
      `fault 8 (rolling restart of 3 gateways behind HAProxy): publishes accepted=${accepted.length} not_accepted=${publisher.count('unknown')}; ` +
        `deliveries expected=${expected} delivered=${delivered} recovered=${replayed} (in ${resubscribes} resubscribes with since, all recovered:true) ` +
        `lost=${expected - delivered} duplicates=${duplicates}; reconnects=${reconnects} (refused attempts=${clients.reduce((s, c) => s + c.refusedAttempts, 0)}); ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    for (const c of clients) {
      const replays = c.acks.filter((a) => a.since !== undefined).map((a) => a.ack.offset! - a.since!.offset);
      t.diagnostic(`  ${c.name}: reconnects=${c.closes.length} (${c.closes.join(',')}) replayed per resubscribe=${replays.join(',')}`);
    }
  });
});

// Connection health with mock timers: one PING per connection per interval, never two in flight,
// answering flips reported once each way, a connection that is down is not PINGed; and what
// counts as ready.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Health, type HealthHost, LinkHealth, Readiness } from '../../services/gateway/src/bus/health.js';

type Role = 'publisher' | 'subscriber';

class Host implements HealthHost<Role> {
  ticks = 0;
  readonly pings: { role: Role; answer: () => void; fail: (err: Error) => void }[] = [];
  readonly changes: [Role, boolean, string | undefined][] = [];
  tick(): void {
    this.ticks++;
  }
  ping(role: Role): Promise<unknown> {
    return new Promise((resolve, reject) => this.pings.push({ role, answer: () => resolve('PONG'), fail: reject }));
  }
  changed(role: Role, answering: boolean, err?: Error): void {
    this.changes.push([role, answering, err?.message]);
  }
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Health', () => {
  test('every interval: tick, then one PING per connection that is up', (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const host = new Host();
    const health = new Health<Role>(['publisher', 'subscriber'], host, 1000);
    t.after(() => health.stop());
    health.start();
    t.mock.timers.tick(999);
    assert.equal(host.ticks, 0, 'nothing before the first interval');
    t.mock.timers.tick(1);
    assert.equal(host.ticks, 1);
    assert.equal(host.pings.length, 0, 'no connection up yet: no PING');
    health.link('publisher').connected();
    t.mock.timers.tick(1000);
    assert.deepEqual(host.pings.map((p) => p.role), ['publisher']);
  });

  test('a PING still in flight is not repeated; an answer allows the next', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const host = new Host();
    const health = new Health<Role>(['publisher', 'subscriber'], host, 1000);
    t.after(() => health.stop());
    health.link('subscriber').connected();
    health.start();
    t.mock.timers.tick(3000);
    assert.equal(host.pings.length, 1, 'one PING over three intervals while it is unanswered');
    assert.equal(host.ticks, 3);
    host.pings[0]!.answer();
    await flush();
    assert.deepEqual(host.changes, [], 'answering already: no change');
    t.mock.timers.tick(1000);
    assert.equal(host.pings.length, 2);
  });

  test('a failed PING flips to not answering once; the next answer flips back', async () => {
    const host = new Host();
    const health = new Health<Role>(['publisher', 'subscriber'], host);
    const sub = health.link('subscriber');
    sub.connected();
    health.check();
    host.pings[0]!.fail(new Error('Command timed out'));
    await flush();
    assert.equal(sub.answering, false);
    assert.equal(sub.healthy, false);
    health.check();
    host.pings[1]!.fail(new Error('Command timed out'));
    await flush();
    assert.deepEqual(host.changes, [['subscriber', false, 'Command timed out']], 'reported once');
    health.check();
    host.pings[2]!.answer();
    await flush();
    assert.deepEqual(host.changes.at(-1), ['subscriber', true, undefined]);
    assert.equal(sub.healthy, true);
  });

  test('a connection that went down is not PINGed, and a late PING outcome changes nothing', async () => {
    const host = new Host();
    const health = new Health<Role>(['publisher', 'subscriber'], host);
    const pub = health.link('publisher');
    pub.connected();
    health.check();
    pub.disconnected();
    host.pings[0]!.fail(new Error('Connection is closed.'));
    await flush();
    assert.deepEqual(host.changes, []);
    health.check();
    assert.equal(host.pings.length, 1);
    pub.connected();
    assert.equal(pub.healthy, true, 'a fresh connection answers until a PING says otherwise');
  });
});

describe('Readiness', () => {
  function setup(): { pub: LinkHealth; sub: LinkHealth; state: { resubscribed: boolean; isOk: boolean }; r: Readiness } {
    const pub = new LinkHealth();
    const sub = new LinkHealth();
    const state = { resubscribed: false, isOk: false };
    return { pub, sub, state, r: new Readiness(pub, sub, state, state) };
  }

  test('ready needs both connections healthy, the resubscribe done and the probe back', () => {
    const { pub, sub, state, r } = setup();
    assert.equal(r.ready, false);
    pub.connected();
    sub.connected();
    state.resubscribed = true;
    assert.equal(r.ready, false, 'no probe back yet');
    state.isOk = true;
    assert.equal(r.ready, true);
    sub.answering = false;
    assert.equal(r.ready, false, 'a subscriber not answering');
    sub.answering = true;
    pub.disconnected();
    assert.deepEqual([r.ready, r.canPublish], [false, false]);
  });

  test('canPublish: the publisher up and answering and not closed; canProbe also needs the subscription, not its PINGs', () => {
    const { pub, sub, state, r } = setup();
    pub.connected();
    assert.deepEqual([r.canPublish, r.canProbe], [true, false]);
    sub.connected();
    state.resubscribed = true;
    sub.answering = false;
    assert.equal(r.canProbe, true);
    r.close();
    assert.deepEqual([r.canPublish, r.canProbe, r.ready], [false, false, false]);
  });

  test('settle reports each edge once', () => {
    const { pub, sub, state, r } = setup();
    assert.equal(r.settle(), null, 'not ready at first: no edge');
    pub.connected();
    sub.connected();
    Object.assign(state, { resubscribed: true, isOk: true });
    assert.equal(r.settle(), true);
    assert.equal(r.settle(), null);
    r.close();
    assert.equal(r.settle(), false);
    assert.equal(r.settle(), null);
  });
});

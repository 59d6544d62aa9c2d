// The pub/sub probe's state machine with a host that echoes or swallows probes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Probe, type ProbeHost } from '../../services/gateway/src/bus/probe.js';
import { within } from '../helpers/wait.js';

class Host implements ProbeHost {
  echo = true;
  sendable = true;
  readonly sent: Buffer[] = [];
  readonly changes: boolean[] = [];
  readonly reasons: string[] = [];
  probe!: Probe;
  private waiters: (() => void)[] = [];

  canSend(): boolean {
    return this.sendable;
  }
  send(payload: Buffer): void {
    this.sent.push(payload);
    if (this.echo) setImmediate(() => this.probe.received(payload));
  }
  changed(ok: boolean, why: string): void {
    this.changes.push(ok);
    this.reasons.push(why);
    for (const w of this.waiters.splice(0)) w();
  }
  /** Resolves at the next state change. */
  next(): Promise<void> {
    return within(new Promise((resolve) => this.waiters.push(resolve)), 5000, 'a probe state change');
  }
}

function setup(intervalMs = 20, timeoutMs = 40): { host: Host; probe: Probe; counts: { busProbeOk: number; busProbeFailures: number } } {
  const host = new Host();
  const counts = { busProbeOk: 0, busProbeFailures: 0 };
  const probe = new Probe({ intervalMs, timeoutMs }, host, counts);
  host.probe = probe;
  return { host, probe, counts };
}

describe('Probe', () => {
  test('not ok until a probe comes back; then ok', async (t) => {
    const { host, probe, counts } = setup();
    t.after(() => probe.stop());
    assert.equal(probe.isOk, false);
    probe.start();
    const changed = host.next();
    probe.sendNow();
    await changed;
    assert.deepEqual(host.changes, [true]);
    assert.equal(counts.busProbeOk, 1);
  });

  test('a probe that does not come back in time flips it to not ok and is counted; an echo restores it', async (t) => {
    const { host, probe, counts } = setup();
    t.after(() => probe.stop());
    probe.start();
    let changed = host.next();
    probe.sendNow();
    await changed;
    host.echo = false;
    changed = host.next();
    await changed;
    assert.deepEqual(host.changes, [true, false]);
    assert.ok(counts.busProbeFailures >= 1);
    assert.equal(counts.busProbeOk, 0);
    host.echo = true;
    changed = host.next();
    await changed;
    assert.deepEqual(host.changes, [true, false, true]);
    assert.deepEqual(host.reasons, ['echo', 'timeout', 'echo']);
  });

  test('reset requires a fresh echo; the interval sends only while the host can send', (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
    const { host, probe } = setup(10, 1000);
    t.after(() => probe.stop());
    host.echo = false;
    probe.start();
    t.mock.timers.tick(10);
    assert.equal(host.sent.length, 1);
    probe.received(host.sent[0]!);
    assert.equal(probe.isOk, true);
    host.sendable = false;
    probe.reset();
    assert.equal(probe.isOk, false);
    t.mock.timers.tick(50);
    assert.equal(host.sent.length, 1, 'nothing sent while the host cannot send');
    host.sendable = true;
    t.mock.timers.tick(10);
    assert.equal(host.sent.length, 2);
  });

  test('ignores payloads that are not probes', () => {
    const { probe } = setup();
    probe.received(Buffer.from('hello'));
    assert.equal(probe.isOk, false);
  });
});

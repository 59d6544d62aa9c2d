// The pending upgrade: its slot of the in-flight count and its deadline are given back exactly
// once, whichever way it ends (finished, timed out, socket closed), with mock timers.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { PendingUpgrades } from '../../services/gateway/src/pending-upgrade.js';

class FakeSocket extends EventEmitter {
  destroyed = false;
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

function setup(timeoutMs = 1000): { upgrades: PendingUpgrades; timeouts: { n: number } } {
  const timeouts = { n: 0 };
  return { upgrades: new PendingUpgrades(timeoutMs, () => timeouts.n++), timeouts };
}

test('finish gives the slot back once and cancels the deadline', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { upgrades, timeouts } = setup();
  const socket = new FakeSocket();
  const upgrade = upgrades.begin(socket as unknown as Socket);
  assert.equal(upgrades.inFlight, 1);
  upgrade.finish();
  upgrade.finish();
  assert.equal(upgrades.inFlight, 0);
  assert.ok(upgrade.settled);
  t.mock.timers.tick(5000);
  assert.equal(timeouts.n, 0, 'no timeout after finish');
  assert.equal(socket.destroyed, false);
  assert.equal(socket.listenerCount('close'), 0, 'nothing left on the socket');
});

test('the deadline destroys the socket, counts a timeout and gives the slot back', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { upgrades, timeouts } = setup(1000);
  const socket = new FakeSocket();
  const upgrade = upgrades.begin(socket as unknown as Socket);
  t.mock.timers.tick(999);
  assert.equal(upgrades.inFlight, 1);
  t.mock.timers.tick(1);
  assert.equal(timeouts.n, 1);
  assert.ok(socket.destroyed);
  assert.ok(upgrade.settled);
  assert.equal(upgrades.inFlight, 0);
  upgrade.finish();
  assert.equal(upgrades.inFlight, 0);
});

test('a socket closing first settles it without a timeout', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { upgrades, timeouts } = setup();
  const socket = new FakeSocket();
  const upgrade = upgrades.begin(socket as unknown as Socket);
  socket.emit('close');
  assert.ok(upgrade.settled);
  assert.equal(upgrades.inFlight, 0);
  t.mock.timers.tick(5000);
  assert.equal(timeouts.n, 0);
});

test('waitFor ends with the promise, after its bound, or at stopWaiting', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { upgrades } = setup(60_000);
  const never = new Promise<void>(() => undefined);
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const [a, b, c] = [1, 2, 3].map(() => upgrades.begin(new FakeSocket() as unknown as Socket));

  await a!.waitFor(Promise.resolve(), 5000);

  let bounded = false;
  const waitB = b!.waitFor(never, 5000).then(() => (bounded = true));
  t.mock.timers.tick(4999);
  await turn();
  assert.equal(bounded, false, 'not before its bound');
  t.mock.timers.tick(1);
  await waitB;

  let stopped = false;
  const waitC = c!.waitFor(never, 5000).then(() => (stopped = true));
  await turn();
  assert.equal(stopped, false);
  upgrades.stopWaiting();
  await waitC;
  assert.ok(stopped);

  for (const u of [a!, b!, c!]) u.finish();
  assert.equal(upgrades.inFlight, 0);
});

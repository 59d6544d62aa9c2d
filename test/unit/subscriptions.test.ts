// The subscription state machine, transition by transition: what it asks to send, what a reply
// or a failure changes, connection epochs, resubscribe runs, retries and whenLive waiters; and,
// wired to a SequenceTracker as redis.ts wires it, the baseline taken only after the SUBSCRIBE reply.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENVELOPE_BYTES, writeEnvelope } from '../../services/gateway/src/bus/envelope.js';
import { SequenceTracker } from '../../services/gateway/src/bus/sequence.js';
import { type SubscribeBatch, Subscriptions } from '../../services/gateway/src/bus/subscriptions.js';

function setup(batchSize?: number): { subs: Subscriptions; lives: string[] } {
  const lives: string[] = [];
  const subs = new Subscriptions({ live: (channel) => lives.push(channel) }, batchSize);
  return { subs, lives };
}

/** Brings the connection up and confirms the probe channel and every batch of the full run. */
function resubscribe(subs: Subscriptions): SubscribeBatch[] {
  const sent: SubscribeBatch[] = [];
  let batch = subs.connectionUp();
  while (batch !== null) {
    sent.push(batch);
    const step = subs.confirmed(batch);
    batch = step.send;
  }
  assert.equal(subs.resubscribed, true);
  return sent;
}

/** Whether the promise has settled after pending microtasks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('Subscriptions', () => {
  test('nothing is sent while disconnected; the connection subscribes the probe channel, then every wanted channel', () => {
    const { subs, lives } = setup();
    assert.equal(subs.subscribe('a'), null);
    assert.equal(subs.subscribe('b'), null);
    const probe = subs.connectionUp();
    assert.ok(probe);
    assert.deepEqual([probe.probe, probe.sync, probe.channels], [true, true, []]);
    assert.equal(subs.resubscribed, false);
    const step = subs.confirmed(probe);
    assert.ok(step.send);
    assert.deepEqual([step.send.channels, step.send.probe, step.resubscribed], [['a', 'b'], false, false]);
    assert.deepEqual(lives, [], 'the probe channel makes no hub channel live');
    const done = subs.confirmed(step.send);
    assert.deepEqual([done.send, done.resubscribed], [null, true]);
    assert.deepEqual(lives, ['a', 'b']);
    assert.ok(subs.isLive('a') && subs.isLive('b'));
    assert.equal(subs.needsSync, false);
  });

  test('a full resubscribe goes in batches, skipping channels dropped or already live meanwhile', () => {
    const { subs } = setup(2);
    for (const c of ['a', 'b', 'c', 'd', 'e']) subs.subscribe(c);
    const probe = subs.connectionUp()!;
    let step = subs.confirmed(probe);
    assert.deepEqual(step.send!.channels, ['a', 'b']);
    subs.unsubscribe('c');
    const single = subs.subscribe('d')!; // re-wanted while the run goes on: sent on its own
    assert.equal(single.sync, false);
    subs.confirmed(single);
    step = subs.confirmed(step.send!);
    assert.deepEqual(step.send!.channels, ['e'], 'c dropped and d live: [c, d] is skipped, e comes next');
    assert.equal(step.resubscribed, false);
    assert.equal(subs.confirmed(step.send!).resubscribed, true);
  });

  test('a full run sends every batch that has channels left and reports resubscribed after the last', () => {
    const { subs } = setup(2);
    for (const c of ['a', 'b', 'c', 'd', 'e']) subs.subscribe(c);
    const probe = subs.connectionUp()!;
    let step = subs.confirmed(probe);
    const sent: string[][] = [];
    subs.unsubscribe('c');
    while (step.send !== null) {
      sent.push([...step.send.channels]);
      assert.equal(subs.resubscribed, false);
      step = subs.confirmed(step.send);
    }
    assert.deepEqual(sent, [['a', 'b'], ['d'], ['e']]);
    assert.equal(step.resubscribed, true);
    assert.equal(subs.isLive('c'), false);
  });

  test('a subscribe on an up connection is one SUBSCRIBE; its reply makes the channel live and releases waiters', async () => {
    const { subs, lives } = setup();
    resubscribe(subs);
    const batch = subs.subscribe('x');
    assert.ok(batch);
    assert.deepEqual([batch.channels, batch.sync, batch.probe], [['x'], false, false]);
    const live = subs.whenLive('x');
    assert.equal(await settled(live), false, 'not live before the reply');
    const step = subs.confirmed(batch);
    assert.deepEqual([step.send, step.resubscribed], [null, false]);
    assert.equal(await settled(live), true);
    assert.deepEqual(lives, ['x']);
  });

  test('quick unsubscribe/subscribe: a reply marks live only if no later unsubscribe/subscribe came', async () => {
    const { subs, lives } = setup();
    resubscribe(subs);
    const first = subs.subscribe('x')!;
    assert.equal(subs.unsubscribe('x'), true, 'UNSUBSCRIBE is sent on an up connection');
    const second = subs.subscribe('x')!;
    const live = subs.whenLive('x');
    subs.confirmed(first);
    assert.equal(subs.isLive('x'), false, 'the first reply is for a subscription given up since');
    assert.deepEqual(lives, []);
    assert.equal(await settled(live), false);
    subs.confirmed(second);
    assert.equal(subs.isLive('x'), true);
    assert.deepEqual(lives, ['x']);
    assert.equal(await settled(live), true);

    // Unsubscribed with the reply in flight: the reply changes nothing.
    const third = subs.subscribe('y')!;
    subs.unsubscribe('y');
    subs.confirmed(third);
    assert.equal(subs.isLive('y'), false);
    assert.equal(subs.isWanted('y'), false);
  });

  test('unsubscribe releases waiters and sends UNSUBSCRIBE only on an up connection', async () => {
    const { subs } = setup();
    subs.subscribe('x');
    const live = subs.whenLive('x');
    assert.equal(subs.unsubscribe('x'), false, 'no connection: nothing to send');
    assert.equal(await settled(live), true);
    assert.equal(await settled(subs.whenLive('never-wanted')), true, 'a channel not wanted resolves at once');
  });

  test('connection epochs: a reply or failure from an earlier connection changes nothing', () => {
    const { subs, lives } = setup();
    resubscribe(subs);
    const old = subs.subscribe('x')!;
    subs.connectionLost();
    assert.equal(subs.resubscribed, false);
    assert.equal(subs.needsSync, false, 'no connection: no run');
    const probe = subs.connectionUp()!;
    subs.confirmed(old);
    assert.equal(subs.isLive('x'), false);
    assert.deepEqual(lives, []);
    subs.failed(old);
    // The old failure put nothing in retry: the new connection's full run subscribes x once.
    const step = subs.confirmed(probe);
    assert.deepEqual(step.send!.channels, ['x']);
    const done = subs.confirmed(step.send!);
    assert.equal(done.resubscribed, true);
    assert.equal(subs.needsSync, false, 'nothing left to retry');
    assert.deepEqual(lives, ['x']);
  });

  test('a lost connection forgets what was live: every channel is subscribed again on the next one', () => {
    const { subs, lives } = setup();
    subs.subscribe('a');
    resubscribe(subs);
    assert.equal(subs.isLive('a'), true);
    subs.connectionLost();
    assert.equal(subs.isLive('a'), false);
    const sent = resubscribe(subs);
    assert.deepEqual(sent.map((b) => b.channels), [[], ['a']]);
    assert.deepEqual(lives, ['a', 'a']);
  });

  test('a SUBSCRIBE that failed on a connection still up is retried by the next run, until confirmed', () => {
    const { subs, lives } = setup();
    resubscribe(subs);
    const batch = subs.subscribe('late')!;
    assert.deepEqual(subs.failed(batch), { send: null, resubscribed: false });
    assert.equal(subs.isLive('late'), false);
    assert.equal(subs.needsSync, true, 'the health check must send it again');
    const retry = subs.requestSync()!;
    assert.deepEqual([retry.channels, retry.sync, retry.probe], [['late'], true, false]);
    assert.equal(subs.needsSync, false, 'one run at a time');
    // It fails again (still stalled): back in retry.
    subs.failed(retry);
    assert.equal(subs.needsSync, true);
    const again = subs.requestSync()!;
    const step = subs.confirmed(again);
    assert.deepEqual([step.send, step.resubscribed], [null, false], 'a retry run is no resubscribe');
    assert.equal(subs.isLive('late'), true);
    assert.deepEqual(lives, ['late']);
    assert.equal(subs.needsSync, false);
  });

  test('a retry run that fails puts back the channels it had not reached yet', () => {
    const { subs } = setup(1);
    resubscribe(subs);
    for (const c of ['a', 'b', 'c']) subs.failed(subs.subscribe(c)!);
    const first = subs.requestSync()!;
    assert.deepEqual(first.channels, ['a']);
    const step = subs.confirmed(first);
    assert.deepEqual(step.send!.channels, ['b']);
    // c is given up and wanted again (its own SUBSCRIBE still unanswered): still owed a retry.
    subs.unsubscribe('c');
    subs.subscribe('c');
    subs.failed(step.send!);
    assert.equal(subs.needsSync, true);
    const next = subs.requestSync()!;
    const retried: string[] = [...next.channels];
    let s = subs.confirmed(next);
    while (s.send !== null) {
      retried.push(...s.send.channels);
      s = subs.confirmed(s.send);
    }
    assert.deepEqual(retried.sort(), ['b', 'c']);
  });

  test('a failed probe SUBSCRIBE ends the run; the next run is full again', () => {
    const { subs } = setup();
    subs.subscribe('a');
    const probe = subs.connectionUp()!;
    assert.deepEqual(subs.failed(probe), { send: null, resubscribed: false });
    assert.equal(subs.resubscribed, false);
    assert.equal(subs.needsSync, true);
    const again = subs.requestSync()!;
    assert.equal(again.probe, true);
  });

  test('a run asked for while one runs starts when it ends (a reconnect meanwhile: full, on the new epoch)', () => {
    const { subs, lives } = setup();
    subs.subscribe('a');
    const probe = subs.connectionUp()!;
    assert.equal(subs.requestSync(), null, 'one run at a time');
    subs.connectionLost();
    assert.equal(subs.connectionUp(), null, 'asked for while the old run waits for its reply');
    // The old run's reply comes (from the old connection): the new run starts in its place.
    const step = subs.failed(probe);
    assert.ok(step.send);
    assert.equal(step.send.probe, true);
    assert.notEqual(step.send.epoch, probe.epoch);
    let s = subs.confirmed(step.send);
    s = subs.confirmed(s.send!);
    assert.equal(s.resubscribed, true);
    assert.deepEqual(lives, ['a']);
  });

  test('a run asked for during a full run follows it as a retry run', () => {
    const { subs } = setup();
    subs.subscribe('a');
    const probe = subs.connectionUp()!;
    const single = subs.subscribe('b')!;
    subs.failed(single); // b waits in retry
    assert.equal(subs.requestSync(), null); // the subscriber answers again mid-run
    const step = subs.confirmed(probe);
    assert.deepEqual(step.send!.channels, ['a', 'b'], 'the full run subscribes b too');
    const end = subs.confirmed(step.send!);
    assert.equal(end.resubscribed, true);
    assert.equal(end.send, null, 'b is live: the follow-up retry run has nothing to send');
    assert.equal(subs.needsSync, false);
  });

  test('close releases every waiter and sends nothing more', async () => {
    const { subs } = setup();
    subs.subscribe('a');
    const live = subs.whenLive('a');
    subs.close();
    assert.equal(await settled(live), true);
    assert.equal(await settled(subs.whenLive('a')), true);
    assert.equal(subs.connectionUp(), null);
    assert.equal(subs.subscribe('b'), null);
    assert.equal(subs.needsSync, false);
  });
});

describe('Subscriptions with a SequenceTracker: the baseline comes only after the SUBSCRIBE reply', () => {
  const origin = 0xabc;
  function message(seq: number): Buffer {
    const out = Buffer.alloc(ENVELOPE_BYTES);
    writeEnvelope(out, origin, 1, seq);
    return out;
  }
  /** Wired as redis.ts wires them: hold on subscribe, watch when live, forget on unsubscribe. */
  function wired(): { subs: Subscriptions; tracker: SequenceTracker; counts: { busGaps: number; busDuplicates: number } } {
    const counts = { busGaps: 0, busDuplicates: 0 };
    const tracker = new SequenceTracker(counts);
    const subs = new Subscriptions({ live: (channel) => tracker.watch(channel) });
    return { subs, tracker, counts };
  }

  test('messages before the reply are delivered untracked; after it, holes are gaps', () => {
    const { subs, tracker, counts } = wired();
    resubscribe(subs);
    tracker.hold('c');
    const batch = subs.subscribe('c')!;
    assert.equal(tracker.accept('c', message(5)), true);
    assert.equal(tracker.accept('c', message(9)), true);
    assert.equal(counts.busGaps, 0, 'no baseline before the reply');
    subs.confirmed(batch);
    assert.equal(tracker.accept('c', message(10)), true, 'the baseline');
    assert.equal(tracker.accept('c', message(13)), true);
    assert.equal(counts.busGaps, 2);
    assert.equal(tracker.accept('c', message(13)), false, 'a duplicate');
    assert.equal(counts.busDuplicates, 1);
  });

  test('unsubscribe then subscribe: the old reply starts no baseline, so in-flight messages make no false gap', () => {
    const { subs, tracker, counts } = wired();
    resubscribe(subs);
    tracker.hold('c');
    const first = subs.subscribe('c')!;
    tracker.forget('c');
    subs.unsubscribe('c');
    tracker.hold('c');
    const second = subs.subscribe('c')!;
    subs.confirmed(first); // late reply to the given-up subscription
    // Still in flight from the old subscription: 2 and 3; then, after the new reply, 6.
    assert.equal(tracker.accept('c', message(2)), true);
    assert.equal(tracker.accept('c', message(3)), true);
    subs.confirmed(second);
    assert.equal(tracker.accept('c', message(6)), true);
    assert.equal(counts.busGaps, 0, '4 and 5 were published while the channel was not held');
    assert.equal(tracker.accept('c', message(8)), true);
    assert.equal(counts.busGaps, 1, 'the new subscription is tracked');
  });

  test('a resubscribe after a reconnect keeps the state: what was published while away is counted', () => {
    const { subs, tracker, counts } = wired();
    tracker.hold('c');
    subs.subscribe('c');
    resubscribe(subs);
    tracker.accept('c', message(1));
    subs.connectionLost();
    resubscribe(subs);
    tracker.accept('c', message(4));
    assert.equal(counts.busGaps, 2);
  });
});

// The SDK's pure cores: full-jitter backoff, the connection state machine and its rules, the
// per-subscription position tracker and the liveness check. No sockets, no timers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backoffDelay, soonDelay } from '../../clients/js/src/backoff.js';
import { ClientErrorCode } from '../../clients/js/src/errors.js';
import { Liveness } from '../../clients/js/src/heartbeat.js';
import { ConnectionMachine, type Decision, ruleFor } from '../../clients/js/src/machine.js';
import { PositionTracker } from '../../clients/js/src/position.js';
import { CLOSE_RULES, CONNECT_FAILED, LOCAL_RULES } from '../../clients/js/src/rules.js';
import { EXPIRY_MARGIN_MS, isStale, tokenExpiry } from '../../clients/js/src/token.js';
import { mulberry32 as seeded } from '../helpers/random.js';

describe('backoff', () => {
  test('full jitter: the window doubles from min and stops at max; the extremes of random give 0 and just under the window', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const window = Math.min(20_000, 500 * 2 ** attempt);
      assert.equal(backoffDelay(attempt, 500, 20_000, () => 0), 0);
      assert.equal(backoffDelay(attempt, 500, 20_000, () => 0.999999), Math.floor(0.999999 * window), `attempt ${attempt}`);
    }
    assert.equal(backoffDelay(2000, 500, 20_000, () => 0.5), 10_000, 'a huge attempt count stays at max');
  });

  test('spread: 10,000 draws per attempt stay in [0, window) and fill it evenly (mean near half, every tenth used)', () => {
    const random = seeded(42);
    for (const attempt of [0, 3, 10]) {
      const window = Math.min(20_000, 500 * 2 ** attempt);
      const deciles = new Array<number>(10).fill(0);
      let sum = 0;
      const n = 10_000;
      for (let i = 0; i < n; i++) {
        const d = backoffDelay(attempt, 500, 20_000, random);
        assert.ok(d >= 0 && d < window, `${d} in [0, ${window})`);
        sum += d;
        deciles[Math.floor((d / window) * 10)]!++;
      }
      const mean = sum / n;
      assert.ok(Math.abs(mean - window / 2) < window * 0.02, `attempt ${attempt}: mean ${mean} near ${window / 2}`);
      for (const count of deciles) assert.ok(count > n / 10 * 0.85 && count < (n / 10) * 1.15, `deciles ${deciles.join(',')}`);
    }
  });

  test('soon (after 1001 or 4001): spread over [0, min), not all at 0', () => {
    const random = seeded(7);
    const draws = Array.from({ length: 1000 }, () => soonDelay(500, random));
    assert.ok(draws.every((d) => d >= 0 && d < 500));
    assert.ok(new Set(draws).size > 300, 'distinct delays');
    assert.ok(draws.filter((d) => d < 100).length < 300, 'at most about a fifth within the first 100 ms');
  });
});

describe('connection machine', () => {
  const machine = (random = () => 0.5, canRefresh = true): ConnectionMachine =>
    new ConnectionMachine({ minReconnectDelayMs: 500, maxReconnectDelayMs: 20_000, random, canRefresh });
  const reconnect = (d: Decision): Extract<Decision, { kind: 'reconnect' }> => {
    assert.equal(d.kind, 'reconnect');
    return d as Extract<Decision, { kind: 'reconnect' }>;
  };

  test('connect only from disconnected; open resets the backoff', () => {
    const m = machine();
    assert.equal(m.state, 'disconnected');
    assert.equal(m.start(), true);
    assert.equal(m.state, 'connecting');
    assert.equal(m.start(), false, 'a second connect() does nothing');
    const delays = [1, 2, 3].map(() => reconnect(m.ended(CONNECT_FAILED)).delayMs);
    assert.deepEqual(delays, [250, 500, 1000], 'windows 500, 1000, 2000 at random()=0.5');
    m.opened();
    assert.equal(m.state, 'connected');
    assert.equal(reconnect(m.ended(ruleFor({ opened: true, code: 1006 }))).delayMs, 250, 'back to the first window');
    assert.equal(m.state, 'connecting');
    m.stop();
    assert.equal(m.state, 'disconnected');
  });

  test('backoff grows to max and stays there while attempts keep failing (never a stop)', () => {
    const m = machine(() => 0.999);
    m.start();
    let last = 0;
    for (let i = 0; i < 20; i++) last = reconnect(m.ended(CONNECT_FAILED)).delayMs;
    assert.equal(last, Math.floor(0.999 * 20_000));
    assert.equal(m.state, 'connecting');
  });

  test('1001 reconnects soon but spread: a delay in [0, min), whatever the attempt count', () => {
    const m = machine(() => 0.8);
    m.start();
    for (let i = 0; i < 6; i++) m.ended(CONNECT_FAILED);
    m.opened();
    const d = reconnect(m.ended(ruleFor({ opened: true, code: 1001 })));
    assert.equal(d.delayMs, 400);
    assert.equal(d.refreshToken, false);
  });

  test('4001 asks for a token refresh before reconnecting; without getToken it stops with token_expired', () => {
    const m = machine(() => 0.5, true);
    m.start();
    m.opened();
    const d = reconnect(m.ended(ruleFor({ opened: true, code: 4001 })));
    assert.equal(d.refreshToken, true);
    assert.ok(d.delayMs < 500);

    const noRefresh = machine(() => 0.5, false);
    noRefresh.start();
    noRefresh.opened();
    const stop = noRefresh.ended(ruleFor({ opened: true, code: 4001 }));
    assert.equal(stop.kind, 'stop');
    assert.equal(stop.rule.error, ClientErrorCode.TokenExpired);
    assert.equal(noRefresh.state, 'disconnected');
  });

  test('1008, and 401 or 403 at upgrade, stop with their error; 503 at upgrade and other closes back off', () => {
    for (const [ended, code] of [
      [{ opened: true, code: 1008 }, ClientErrorCode.RateLimited],
      [{ opened: false, code: 1006, status: 401 }, ClientErrorCode.Unauthorized],
      [{ opened: false, code: 1006, status: 403 }, ClientErrorCode.Forbidden],
    ] as const) {
      const m = machine();
      m.start();
      const d = m.ended(ruleFor(ended));
      assert.equal(d.kind, 'stop', JSON.stringify(ended));
      assert.equal(d.rule.error, code);
      assert.equal(m.state, 'disconnected');
    }
    for (const ended of [
      { opened: false, code: 1006, status: 503 },
      { opened: false, code: 1006 },
      { opened: true, code: 1006 },
      { opened: true, code: 1011 },
      { opened: true, code: 1013 },
      { opened: true, code: 1000 },
      { opened: true, code: 4999 },
    ]) {
      const m = machine();
      m.start();
      assert.equal(reconnect(m.ended(ruleFor(ended))).rule.action, 'backoff', JSON.stringify(ended));
    }
    assert.equal(ruleFor({ opened: false, code: 1006 }).error, ClientErrorCode.ConnectFailed, 'a failure before open is reported');
  });

  test('a 401 for a token reused from an earlier attempt refreshes it once when getToken exists; a fresh token refused stops', () => {
    const refused = ruleFor({ opened: false, code: 1006, status: 401 });
    const m = machine(() => 0.5, true);
    m.start();
    const d = reconnect(m.ended(refused, false));
    assert.equal(d.refreshToken, true);
    assert.ok(d.delayMs < 500);
    assert.equal(m.ended(refused, true).kind, 'stop');
    const noGetToken = machine(() => 0.5, false);
    noGetToken.start();
    assert.equal(noGetToken.ended(refused, false).kind, 'stop');
    const forbidden = machine(() => 0.5, true);
    forbidden.start();
    assert.equal(forbidden.ended(ruleFor({ opened: false, code: 1006, status: 403 }), false).kind, 'stop', '403 is not about the token');
  });

  test('the rules table covers the gateway close codes the brief names', () => {
    assert.deepEqual([...CLOSE_RULES.keys()].sort(), [1000, 1001, 1006, 1008, 1011, 1013, 4001]);
    assert.equal(LOCAL_RULES.HeartbeatTimeout.action, 'backoff');
  });
});

describe('position tracker', () => {
  test('a fresh subscribe continues from the ack; in-order offsets are delivered, old ones dropped', () => {
    const p = new PositionTracker();
    assert.equal(p.since(), undefined);
    assert.deepEqual(p.subscribed({ offset: 5, epoch: 'e1' }, false), { wasRecovering: false, recovered: false });
    assert.deepEqual(p.position, { offset: 5, epoch: 'e1' });
    assert.equal(p.message(5, 'e1'), 'duplicate', 'at the ack position: from before the subscribe');
    assert.equal(p.message(6, 'e1'), 'deliver');
    assert.equal(p.message(7, 'e1'), 'deliver');
    assert.equal(p.message(6, 'e1'), 'duplicate');
    assert.equal(p.message(7, 'e1'), 'duplicate');
    assert.deepEqual(p.since(), { offset: 7, epoch: 'e1' });
  });

  test('recovered:true keeps our position so the replay is delivered; recovered:false jumps to the ack', () => {
    const p = new PositionTracker();
    p.subscribed({ offset: 3, epoch: 'e' }, false);
    p.message(4, 'e');
    assert.deepEqual(p.subscribed({ offset: 9, epoch: 'e', recovered: true }, true), { wasRecovering: true, recovered: true });
    for (const o of [5, 6, 7, 8, 9]) assert.equal(p.message(o, 'e'), 'deliver', `replayed ${o}`);
    assert.equal(p.message(9, 'e'), 'duplicate', 'the seam: no duplicate');

    assert.deepEqual(p.subscribed({ offset: 50, epoch: 'e2', recovered: false }, true), { wasRecovering: true, recovered: false });
    assert.deepEqual(p.position, { offset: 50, epoch: 'e2' });
    assert.equal(p.message(51, 'e2'), 'deliver');
    assert.equal(p.subscribed({ offset: 1, epoch: 'x', recovered: true }, false).recovered, false, 'recovered without since means nothing');
  });

  test('a new epoch or a hole in the offsets is delivered and reported as lost', () => {
    const p = new PositionTracker();
    p.subscribed({ offset: 0, epoch: 'a' }, false);
    assert.equal(p.message(1, 'a'), 'deliver');
    assert.equal(p.message(4, 'a'), 'lost');
    assert.deepEqual(p.position, { offset: 4, epoch: 'a' });
    assert.equal(p.message(1, 'b'), 'lost', 'new epoch: its offsets start over');
    assert.equal(p.message(2, 'b'), 'deliver');
  });

  test("the gateway's lost frame moves the position to the named offset (the next message is offset + 1)", () => {
    const p = new PositionTracker();
    p.subscribed({ offset: 10, epoch: 'a' }, false);
    p.lost(19, 'a');
    assert.deepEqual(p.position, { offset: 19, epoch: 'a' });
    assert.equal(p.message(20, 'a'), 'deliver', 'the message after the lost position is not a second loss');
    assert.equal(p.message(20, 'a'), 'duplicate');
    p.lost(2, 'b');
    assert.equal(p.message(3, 'b'), 'deliver', 'a lost in a new epoch starts it');
    p.lost(1, 'b');
    assert.deepEqual(p.position, { offset: 3, epoch: 'b' }, 'an older lost never moves it back');
  });

  test('without history (no offset or epoch) every message is delivered and there is no since', () => {
    const p = new PositionTracker();
    p.subscribed({}, false);
    assert.equal(p.message(undefined, undefined), 'deliver');
    assert.equal(p.message(undefined, undefined), 'deliver');
    assert.equal(p.since(), undefined);
    assert.equal(p.message('7', 'e'), 'deliver', 'malformed offsets are not positions');
    assert.equal(p.since(), undefined);
  });
});

describe('token expiry', () => {
  const jwt = (claims: object): string =>
    `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

  test('exp is read from the payload (base64url, any padding); anything else has no expiry', () => {
    assert.equal(tokenExpiry(jwt({ exp: 1_700_000_000, sub: 'a~b?' })), 1_700_000_000_000);
    assert.equal(tokenExpiry(jwt({ exp: 1, x: 'pad' })), 1000);
    for (const opaque of ['opaque', 'a..b', jwt({ sub: 'no exp' }), jwt({ exp: '9' }), 'x.!!!.y', `x.${Buffer.from('null').toString('base64url')}.y`]) {
      assert.equal(tokenExpiry(opaque), undefined, opaque);
    }
  });

  test('stale within the margin, never for a token without exp', () => {
    const token = jwt({ exp: 1000 });
    assert.equal(isStale(token, 1_000_000 - EXPIRY_MARGIN_MS - 1), false);
    assert.equal(isStale(token, 1_000_000 - EXPIRY_MARGIN_MS), true);
    assert.equal(isStale('opaque', Number.MAX_SAFE_INTEGER), false);
  });
});

describe('liveness', () => {
  test('ping after half the timeout in silence, dead at the timeout; anything received resets it', () => {
    const l = new Liveness(1000);
    l.received(0);
    assert.deepEqual(l.check(100), { action: 'wait', nextInMs: 400 });
    assert.deepEqual(l.check(500), { action: 'ping', nextInMs: 500 });
    assert.deepEqual(l.check(700), { action: 'wait', nextInMs: 300 }, 'one ping per silence');
    assert.deepEqual(l.check(1000), { action: 'dead' });
    l.received(1000);
    assert.deepEqual(l.check(1200), { action: 'wait', nextInMs: 300 });
    assert.equal(l.check(1500).action, 'ping', 'a new silence gets a new ping');
  });
});

// Outage logging with a mock clock: the first failure at once with its cause, then at most one
// line per interval with the attempts that failed meanwhile, one line when it is back; and the
// address never carries the URL's credentials.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OutageLines, OutageLog, redisAddress } from '../../services/gateway/src/bus/outage.js';

describe('OutageLog', () => {
  test('an unreachable Redis: one line at once, then one per interval, then the recovery', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const log = new OutageLog(30_000);
    log.error('connect ECONNREFUSED 127.0.0.1:1');
    const first = log.failed();
    assert.deepEqual(first, { line: OutageLines.Unreachable, err: 'connect ECONNREFUSED 127.0.0.1:1' });
    assert.equal(first.line.level, 'warn');
    // An attempt every 2 s for 28 s: nothing logged.
    for (let i = 0; i < 14; i++) {
      t.mock.timers.tick(2000);
      log.error('connect ECONNREFUSED 127.0.0.1:1');
      assert.equal(log.failed(), null, `attempt ${i + 2} is not logged`);
    }
    t.mock.timers.tick(2000);
    log.error('connect ETIMEDOUT');
    assert.deepEqual(log.failed(), { line: OutageLines.StillDown, failedAttempts: 15, downMs: 30_000, err: 'connect ETIMEDOUT' });
    t.mock.timers.tick(2000);
    assert.equal(log.failed(), null, 'the interval starts again');
    t.mock.timers.tick(1000);
    const back = log.up();
    assert.deepEqual(back, { line: OutageLines.Restored, failedAttempts: 17, downMs: 33_000 });
    assert.equal(back.line.level, 'info');
    assert.equal(log.up(), null, 'no outage, no line');
  });

  test('a connection that was up: "lost", with the cause or "connection closed"; each outage starts afresh', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 0 });
    const log = new OutageLog(30_000);
    assert.equal(log.up(), null, 'the first connect is no recovery');
    const lost = log.failed();
    assert.equal(lost?.line, OutageLines.Lost);
    assert.equal(lost?.err, 'connection closed', 'a clean close has no error');
    t.mock.timers.tick(500);
    assert.equal(log.up()?.downMs, 500);
    t.mock.timers.tick(60_000);
    log.error('read ECONNRESET');
    assert.deepEqual(log.failed(), { line: OutageLines.Lost, err: 'read ECONNRESET' }, 'a new outage begins with its first line');
    t.mock.timers.tick(30_000);
    assert.equal(log.failed()?.failedAttempts, 1, 'counted from this outage only');
  });

  test('a cause is used once: the next close without an error says "connection closed"', () => {
    let now = 0;
    const log = new OutageLog(10, () => now);
    log.error('boom');
    log.failed();
    now = 20;
    assert.equal(log.failed()?.err, 'connection closed');
  });
});

describe('redisAddress', () => {
  test('host and port only, with the defaults ioredis uses', () => {
    assert.equal(redisAddress('redis://:s3cret@10.0.0.5:6380/2'), '10.0.0.5:6380');
    assert.equal(redisAddress('rediss://user:pw@cache.example'), 'cache.example:6379');
    assert.equal(redisAddress('redis://[::1]:7000'), '[::1]:7000');
  });
});

// The token bucket with a driven clock: burst, refill, one report per run of refusals, and the
// abuse rule (more than `burst` refusals within one second).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket, Verdict } from '../../services/gateway/src/ratelimit.js';

test('a full bucket admits the burst, then refuses; refill at the rate', () => {
  const b = new TokenBucket(10, 5, 0);
  for (let i = 0; i < 5; i++) assert.equal(b.take(0), Verdict.Ok);
  assert.equal(b.take(0), Verdict.Refused);
  assert.equal(b.take(50), Verdict.RefusedAgain, 'half a token after 50 ms at 10/s');
  assert.equal(b.take(100), Verdict.Ok, 'one token after 100 ms');
  assert.equal(b.take(100), Verdict.Refused, 'a new run of refusals is reported again');
  assert.equal(b.take(10_000), Verdict.Ok);
  // Refill stops at the burst.
  let ok = 1;
  while (b.take(10_000) === Verdict.Ok) ok++;
  assert.equal(ok, 5);
});

test('more than `burst` refusals within one second is abuse; fewer is not', () => {
  const b = new TokenBucket(1, 3, 0);
  for (let i = 0; i < 3; i++) b.take(0);
  const verdicts = [];
  for (let i = 0; i < 4; i++) verdicts.push(b.take(1 + i));
  assert.deepEqual(verdicts, [Verdict.Refused, Verdict.RefusedAgain, Verdict.RefusedAgain, Verdict.Abuse]);

  const slow = new TokenBucket(1, 3, 0);
  for (let i = 0; i < 3; i++) slow.take(0);
  // Three refusals per second, second after second: over the rate, but never abuse.
  for (let s = 0; s < 5; s++) {
    for (let i = 0; i < 3; i++) assert.notEqual(slow.take(s * 1000 + 100 + i * 100), Verdict.Abuse);
  }
});

test('a flood 10x over the rate is abuse within the first second', () => {
  const b = new TokenBucket(100, 200, 0);
  let t = 0;
  let verdict: Verdict = Verdict.Ok;
  while (verdict !== Verdict.Abuse && t < 1000) {
    verdict = b.take(t);
    t += 0.1; // 10,000 frames/s
  }
  assert.equal(verdict, Verdict.Abuse);
  assert.ok(t < 1000);
});

// The origin rule: no Origin passes, the gateway's own origin passes, any other only when listed
// (or with `*`); and the CORS headers an allowed cross origin gets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { corsHeaders, originAllowed, preflightHeaders } from '../../services/gateway/src/origin.js';

const HOST = 'gw.example:8080';

test('originAllowed: unset allows the same origin only; set allows listed origins; no Origin always passes', () => {
  // Unset ALLOWED_ORIGINS: same origin only (it used to allow every origin).
  assert.equal(originAllowed(undefined, 'https://evil.example', HOST), false);
  assert.ok(originAllowed(undefined, undefined, HOST));
  assert.ok(originAllowed(undefined, 'http://gw.example:8080', HOST));
  assert.ok(originAllowed(undefined, 'https://GW.example:8080', 'GW.EXAMPLE:8080'), 'case-insensitive');
  assert.equal(originAllowed(undefined, 'http://gw.example:9090', HOST), false, 'another port is another origin');
  assert.equal(originAllowed(undefined, 'http://gw.example', HOST), false);
  assert.ok(originAllowed(undefined, 'http://gw.example', 'gw.example:80'), 'a default port, written or not');
  assert.equal(originAllowed(undefined, 'https://gw.example', 'gw.example:80'), false);
  assert.equal(originAllowed(undefined, 'http://gw.example', 'gw.example/x'), false, 'a Host with a path is no host');
  assert.equal(originAllowed(undefined, 'http://gw.example:8080', undefined), false, 'no Host: nothing is our own');
  const allowed = ['https://app.example'];
  assert.ok(originAllowed(allowed, 'https://app.example', HOST));
  assert.ok(originAllowed(allowed, 'HTTPS://APP.EXAMPLE', HOST));
  assert.ok(originAllowed(allowed, undefined, HOST));
  assert.ok(originAllowed(allowed, 'http://gw.example:8080', HOST), 'the own origin stays allowed');
  assert.equal(originAllowed(allowed, 'https://evil.example', HOST), false);
  assert.equal(originAllowed(allowed, 'null', HOST), false);
  assert.equal(originAllowed(allowed, 'https://app.example.evil.example', HOST), false);
});

test('originAllowed: `*` allows every origin, explicitly', () => {
  assert.ok(originAllowed(['*'], 'https://evil.example', HOST));
  assert.ok(originAllowed(['*'], 'null', HOST));
});

test('originAllowed: `Origin: null` and unparseable origins are never the own origin', () => {
  assert.equal(originAllowed(undefined, 'null', 'null'), false);
  assert.equal(originAllowed(undefined, 'file://', ''), false);
  assert.equal(originAllowed(undefined, 'ws://gw.example:8080', HOST), false, 'only http(s) pages');
});

test('corsHeaders: only for a cross origin; preflightHeaders: what a browser needs to POST JSON with a bearer', () => {
  assert.deepEqual(corsHeaders(undefined, HOST), {});
  assert.deepEqual(corsHeaders('http://gw.example:8080', HOST), {});
  assert.deepEqual(corsHeaders('https://app.example', HOST), { 'access-control-allow-origin': 'https://app.example', vary: 'Origin' });
  const pre = preflightHeaders('https://app.example');
  assert.equal(pre['access-control-allow-origin'], 'https://app.example');
  assert.equal(pre['access-control-allow-methods'], 'POST');
  assert.equal(pre['access-control-allow-headers'], 'content-type, authorization');
  assert.ok(Number(pre['access-control-max-age']) > 0);
  assert.equal(pre.vary, 'Origin');
});

// The SDK in chromium pages across the failures it exists for, against the loopback cluster (three
// gateways behind HAProxy, tokens required). Each page is a document the gateways serve through
// HAProxy (/hubcast.js itself), so the SDK runs on the cluster's origin with the bundle it ships:
// - a token that expires (4001): getToken is called, and the subscription resumes from its
//   position, with what was published while it was away;
// - a SIGTERM of its gateway while messages are published during the reconnect window: every
//   offset once, in order;
// - 200 clients on a draining gateway (in 10 pages, since chromium spaces out one page's
//   pending handshakes) spread their reconnects: the spread is reported.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { type Cluster, type ClusterGateway, startCluster } from '../../tools/cluster/src/cluster.js';
import { type Browser, launchChromium, pageErrors } from '../../tools/kit/src/browser.js';
import { freePort } from '../../tools/kit/src/ports.js';
import { waitUntil, within } from '../../tools/kit/src/wait.js';
import { TEST_SECRET, hs256, nowSec } from '../helpers/tokens.js';

const API_KEY = 'browser-test-publish-key-of-32-characters';

/**
 * In every page: hub.start(name, options) runs one HubcastClient from the served bundle and
 * records what it sees in hub.rec[name], timed with performance.timeOrigin + now() (one clock
 * for every page). options: url, channel, random, token, getToken (calls the exposed
 * hubcastToken(name)), firstUrl (the first attempt goes there instead: a gateway's own address).
 */
const IN_PAGE = `
window.hub = { rec: {} };
window.hub.start = async (name, o) => {
  const { HubcastClient } = await import('/hubcast.js');
  const now = () => performance.timeOrigin + performance.now();
  const rec = { attempts: [], gateways: [], connected: [], disconnected: [], errors: [], messages: [], subscribed: [], lost: [] };
  window.hub.rec[name] = rec;
  let first = true;
  class Tracked extends WebSocket {
    constructor(url) {
      super(first && o.firstUrl ? o.firstUrl + url.slice(url.indexOf('/ws')) : url);
      first = false;
      rec.attempts.push(now());
      this.addEventListener('message', ({ data }) => {
        if (typeof data === 'string' && data.startsWith('{"op":"welcome"')) rec.gateways.push(JSON.parse(data).gateway);
      });
    }
  }
  const client = new HubcastClient(o.url, {
    WebSocket: Tracked,
    token: o.token,
    getToken: o.getToken ? () => window.hubcastToken(name) : undefined,
    random: o.random === undefined ? undefined : () => o.random,
  });
  client.on('connected', () => rec.connected.push(now()));
  client.on('disconnected', ({ code, reason, willReconnect }) => rec.disconnected.push({ code, reason, willReconnect, at: now() }));
  client.on('error', (err) => rec.errors.push(err.code));
  if (o.channel) {
    const sub = client.subscribe(o.channel);
    sub.on('message', (data, { offset, epoch }) => rec.messages.push({ data, offset, epoch }));
    sub.on('subscribed', ({ wasRecovering, recovered, position }) =>
      rec.subscribed.push({ wasRecovering, recovered, offset: position ? position.offset : null, at: now() }));
    sub.on('lost', (position) => rec.lost.push(position));
  }
  window.hub.clients = window.hub.clients || [];
  window.hub.clients.push(client);
  client.connect();
};
`;

interface Rec {
  attempts: number[];
  gateways: string[];
  connected: number[];
  disconnected: { code: number; reason: string; willReconnect: boolean; at: number }[];
  errors: string[];
  messages: { data: unknown; offset?: number; epoch?: string }[];
  subscribed: { wasRecovering: boolean; recovered: boolean; offset: number | null; at: number }[];
  lost: unknown[];
}

interface StartOptions {
  readonly channel?: string;
  readonly random?: number;
  readonly token?: string;
  readonly getToken?: boolean;
  readonly firstUrl?: string;
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

describe('the SDK in chromium pages, through HAProxy', { timeout: 150_000 }, () => {
  let cluster: Cluster;
  let browser: Browser;
  let lbPort: number;
  const pages: Page[] = [];
  /** Console errors and uncaught exceptions, one list per page. */
  const errors: string[][] = [];

  before(async () => {
    lbPort = await freePort();
    [cluster, browser] = await Promise.all([
      startCluster({
        lbPort,
        gatewayEnv: {
          LOG_LEVEL: 'warn',
          // Longer than HAProxy takes to see /readyz fail (fall 2 x inter 1 s), so no reconnect
          // reaches a gateway that is about to close.
          DRAIN_MS: '3500',
          AUTH_JWT_SECRET: TEST_SECRET,
          PUBLISH_API_KEY: API_KEY,
          // The spread test opens its first connections on a gateway's own address, from pages
          // on HAProxy's origin; everything else is same-origin.
          ALLOWED_ORIGINS: `http://127.0.0.1:${lbPort}`,
        },
      }),
      launchChromium(),
    ]);
  });
  after(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  const wsUrl = (): string => `ws://127.0.0.1:${lbPort}/ws?welcome`;
  const token = (ttlS = 3600): Promise<string> => hs256({ subscribe: ['*'], publish: ['*'], exp: nowSec() + ttlS });
  const publish = async (channel: string, data: unknown): Promise<void> => {
    const res = await fetch(`${cluster.lb}/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ channel, data }),
    });
    assert.equal(res.status, 202, await res.text());
  };

  /** A page on the cluster's origin with the recorder loaded; tokens from `mint` when asked. */
  async function openPage(mint: (name: string) => Promise<string> = () => token()): Promise<Page> {
    const page = await browser.newPage();
    pages.push(page);
    errors.push(pageErrors(page));
    await page.exposeFunction('hubcastToken', mint);
    await page.goto(`${cluster.lb}/hubcast.js`);
    await page.evaluate(IN_PAGE);
    return page;
  }
  const start = (page: Page, name: string, options: StartOptions): Promise<void> =>
    page.evaluate(`window.hub.start(${JSON.stringify(name)}, ${JSON.stringify({ url: wsUrl(), ...options })})`);
  const rec = (page: Page, name: string): Promise<Rec> => page.evaluate(`window.hub.rec[${JSON.stringify(name)}]`);
  /** Waits for a condition on hub.rec[name] (as `r`); a timeout names what it waited for and what the client saw. */
  const until = async (page: Page, name: string, condition: string, what: string, timeoutMs = 15_000): Promise<void> => {
    const check = `(() => { const r = window.hub.rec[${JSON.stringify(name)}]; return r && (${condition}); })()`;
    try {
      await page.waitForFunction(check, undefined, { timeout: timeoutMs, polling: 20 });
    } catch (err) {
      const r = await rec(page, name).catch(() => undefined);
      const saw = r && {
        messages: r.messages.map((m) => [m.data, m.offset]),
        subscribed: r.subscribed.map(({ wasRecovering, recovered, offset }) => ({ wasRecovering, recovered, offset })),
        disconnected: r.disconnected.map((d) => d.code),
        errors: r.errors,
        gateways: r.gateways,
      };
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${name} saw ${JSON.stringify(saw)}`, { cause: err });
    }
  };
  const gatewayAt = (address: string): ClusterGateway => {
    const g = cluster.gateways.find((c) => new URL(c.url).host === address);
    assert.ok(g, `${address} is a gateway of the cluster`);
    return g;
  };
  /** Every message once and in order: data 1..n, offsets consecutive in one epoch. */
  const assertLedger = (got: Rec['messages'], n: number): void => {
    assert.deepEqual(
      got.map((m) => m.data),
      Array.from({ length: n }, (_, i) => i + 1),
      'every message once, in order',
    );
    assert.equal(typeof got[0]?.offset, 'number', 'messages carry offsets (history on)');
    assert.equal(new Set(got.map((m) => m.epoch)).size, 1, 'one epoch');
    for (let i = 1; i < got.length; i++) assert.equal(got[i]!.offset, got[0]!.offset! + i, `offset of message ${i + 1}`);
  };

  test('a token that expires (4001): getToken is called, the subscription resumes from its position with what it missed', async () => {
    const calls: string[] = [];
    let next = 1;
    const page = await openPage(async (name) => {
      calls.push(name);
      if (calls.length === 1) return token(2);
      // Called after the 4001, before the reconnect: what is published now, the client has missed.
      for (let i = 0; i < 3; i++) await publish('tokens', next++);
      return token();
    });
    await start(page, 'c', { channel: 'tokens', getToken: true });
    await until(page, 'c', 'r.subscribed.length === 1', 'the first subscribe');
    for (let i = 0; i < 3; i++) await publish('tokens', next++);
    await until(page, 'c', 'r.subscribed.length === 2', 'the resubscribe after the 4001', 15_000);
    for (let i = 0; i < 2; i++) await publish('tokens', next++);
    await until(page, 'c', 'r.messages.length >= 8', 'all 8 messages');
    const r = await rec(page, 'c');
    assert.deepEqual(calls, ['c', 'c'], 'getToken: once to connect, once after the 4001');
    assert.deepEqual(
      r.disconnected.map(({ code, reason, willReconnect }) => ({ code, reason, willReconnect })),
      [{ code: 4001, reason: 'token expired', willReconnect: true }],
    );
    const [, again] = r.subscribed;
    assert.equal(again!.wasRecovering, true, 'resubscribed with its position (since)');
    assert.equal(again!.recovered, true, 'the missed messages were recovered');
    assertLedger(r.messages, 8);
    assert.deepEqual(r.lost, []);
  });

  test('SIGTERM of its gateway with publishes during the reconnect window: every offset once, in order', async (t) => {
    const page = await openPage();
    // random 0.5: the reconnect after the 1001 waits 250 ms (half of minReconnectDelayMs), a window
    // the publisher below fills.
    await start(page, 'c', { channel: 'ledger', random: 0.5, getToken: true });
    await until(page, 'c', 'r.subscribed.length === 1 && r.gateways.length === 1', 'subscribed');
    const victim = gatewayAt((await rec(page, 'c')).gateways[0]!);

    let n = 0;
    let publishing = true;
    const accepted: number[] = [];
    const publisher = (async () => {
      while (publishing) {
        await publish('ledger', ++n);
        accepted.push(performance.timeOrigin + performance.now());
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await waitUntil(() => n >= 20, { timeoutMs: 10_000, what: '20 publishes before the SIGTERM' });
    victim.proc.child.kill('SIGTERM');
    await until(page, 'c', 'r.subscribed.length === 2', 'the resubscribe on another gateway', 20_000);
    const resumed = n;
    await waitUntil(() => n >= resumed + 20, { timeoutMs: 10_000, what: '20 publishes after the reconnect' });
    publishing = false;
    await publisher;
    assert.equal(await within(victim.proc.exited, 15_000, 'the SIGTERMed gateway to exit'), 0);
    await until(page, 'c', `r.messages.length >= ${n}`, `all ${n} messages`);

    const r = await rec(page, 'c');
    assert.equal(r.disconnected[0]?.code, 1001);
    assert.equal(r.gateways.length, 2);
    assert.notEqual(r.gateways[1], r.gateways[0], 'reconnected to another gateway');
    const [, again] = r.subscribed;
    assert.equal(again!.wasRecovering, true);
    assert.equal(again!.recovered, true);
    const away = r.disconnected[0]!.at;
    const during = accepted.filter((t) => t > away && t < again!.at).length;
    t.diagnostic(`SIGTERM: ${n} messages, ${during} of them accepted while the client was away (1001 to resubscribed)`);
    assert.ok(during >= 5, `${during} publishes accepted while the client was reconnecting`);
    assertLedger(r.messages, n);
    assert.deepEqual(r.lost, []);
  });

  test('200 clients on a draining gateway spread their reconnects over time', async (t) => {
    const [victim] = cluster.gateways.filter((g) => g.proc.child.exitCode === null);
    assert.ok(victim);
    const PAGES = 10;
    const PER_PAGE = 20;
    const shared = await token();
    const spreadPages = await Promise.all(Array.from({ length: PAGES }, () => openPage()));
    // Every first connection goes to the victim's own address; every reconnect through HAProxy.
    const direct = victim.url.replace('http:', 'ws:');
    await Promise.all(
      spreadPages.map(async (page) => {
        for (let i = 0; i < PER_PAGE; i++) await start(page, `s${i}`, { token: shared, firstUrl: direct });
      }),
    );
    const all = `Object.values(window.hub.rec).every((r) => `;
    await Promise.all(spreadPages.map((page) => until(page, 's0', `${all}r.connected.length === 1)`, 'the clients to connect', 30_000)));

    victim.proc.child.kill('SIGTERM');
    await Promise.all(spreadPages.map((page) => until(page, 's0', `${all}r.connected.length === 2)`, 'every reconnect', 30_000)));
    assert.equal(await within(victim.proc.exited, 15_000, 'the drained gateway to exit'), 0);

    const recs = (await Promise.all(spreadPages.map((page) => page.evaluate('Object.values(window.hub.rec)') as Promise<Rec[]>))).flat();
    assert.equal(recs.length, PAGES * PER_PAGE);
    for (const r of recs) assert.equal(r.disconnected[0]?.code, 1001);
    const closed = Math.min(...recs.map((r) => r.disconnected[0]!.at));
    const attempts = recs.map((r) => r.attempts[1]! - closed).sort((a, b) => a - b);
    const opened = recs.map((r) => r.connected[1]! - closed).sort((a, b) => a - b);
    const figures = (xs: number[]): string =>
      `first ${xs[0]!.toFixed(0)} ms, last ${xs.at(-1)!.toFixed(0)} ms, p50 ${percentile(xs, 50).toFixed(0)}, ` +
      `p90 ${percentile(xs, 90).toFixed(0)}, p99 ${percentile(xs, 99).toFixed(0)}`;
    const early = attempts.filter((ms) => ms < 100).length;
    t.diagnostic(`reconnect attempts after the 1001 (${recs.length} clients): ${figures(attempts)}; ${early} within the first 100 ms`);
    t.diagnostic(`reconnected (open): ${figures(opened)}`);
    assert.ok(early < recs.length, 'not all within the first 100 ms');
    assert.ok(attempts.at(-1)! - attempts[0]! > 100, 'spread over more than 100 ms');
    assert.ok(early <= recs.length / 2, `${early} of ${recs.length} within 100 ms: spread, not a herd`);
  });

  test('no page logged a console error', async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
    assert.deepEqual(errors.flat(), []);
  });
});

// The SDK (Node, `ws` as its WebSocket) against real gateway processes and a real Redis:
// subscribe and receive, publish with ack, a SIGTERM'd gateway behind a health-checking proxy
// (reconnect to the other gateway, resubscribe), a token that expires (4001, getToken) and
// upgrades refused with 401 and 403 (stop with 'error', no retry loop).
import assert from 'node:assert/strict';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import type { Emitter, Listener } from '../../clients/js/src/emitter.js';
import { type ClientEvents, HubcastClient, type HubcastClientOptions } from '../../clients/js/src/index.js';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';
import { TEST_SECRET, hs256, nowSec } from '../helpers/tokens.js';
import { within } from '../helpers/wait.js';


/** The next emission of `event` that matches, with its arguments. Attach before causing it. */
function next<Ev extends { [K in keyof Ev]: Listener }, K extends keyof Ev>(
  emitter: Emitter<Ev>,
  event: K,
  match: (...args: Parameters<Ev[K]>) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<Parameters<Ev[K]>> {
  let fn: Ev[K] | undefined;
  const seen = new Promise<Parameters<Ev[K]>>((resolve) => {
    fn = ((...args: Parameters<Ev[K]>) => {
      if (match(...args)) resolve(args);
    }) as Ev[K];
    emitter.on(event, fn);
  });
  return within(seen, timeoutMs, `the SDK's '${String(event)}' event`).finally(() => emitter.off(event, fn!));
}

/** A load balancer in miniature: each new TCP connection goes to the first target whose /readyz is 200. */
async function healthyProxy(targets: readonly GatewayProcess[]): Promise<{ url: string; picks: number[]; close(): void }> {
  const picks: number[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    void (async () => {
      for (const target of targets) {
        if ((await target.readyz().catch(() => 0)) !== 200) continue;
        picks.push(target.port);
        const upstream = connect(target.port, '127.0.0.1');
        sockets.add(upstream);
        upstream.on('close', () => client.destroy());
        upstream.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        return;
      }
      client.destroy(); // none ready: what HAProxy does with no server up
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    picks,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

const publish = (gateway: GatewayProcess, channel: string, data: unknown): Promise<Response> =>
  fetch(`${gateway.http}/publish`, { method: 'POST', body: JSON.stringify({ channel, data }) });

describe('SDK against real gateways', { timeout: 90_000 }, () => {
  const fx = useFixture();
  const sdk = (url: string, options: HubcastClientOptions = {}): HubcastClient =>
    new HubcastClient(url, { WebSocket, minReconnectDelayMs: 50, maxReconnectDelayMs: 500, ...options });

  test('connect, subscribe, receive a POST /publish, publish with an ack; a refused publish rejects with the gateway code', async (t) => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix() });
    const client = sdk(gateway.ws());
    t.after(() => client.disconnect());
    const sub = client.subscribe('news');
    const subscribed = next(sub, 'subscribed');
    const connected = next(client, 'connected');
    client.connect();
    await connected;
    assert.equal(client.state, 'connected');
    await subscribed;

    const fromHttp = next(sub, 'message', (data) => data === 'over http');
    assert.equal((await publish(gateway, 'news', 'over http')).status, 202);
    await fromHttp;

    const own = next(sub, 'message', (data) => (data as { n?: number }).n === 1);
    await client.publish('news', { n: 1 });
    await own;
    await assert.rejects(client.publish('bad channel!', 1), (err: Error & { code?: string }) => err.code === 'invalid_channel');
  });

  test('SIGTERM of its gateway: 1001, a reconnect through the proxy to the other gateway, resubscribed', async (t) => {
    const prefix = uniquePrefix();
    const a = await fx.gateway({ REDIS_PREFIX: prefix, DRAIN_MS: '300' });
    const b = await fx.gateway({ REDIS_PREFIX: prefix });
    const proxy = await healthyProxy([a, b]);
    t.after(() => proxy.close());
    const client = sdk(proxy.url);
    t.after(() => client.disconnect());
    const sub = client.subscribe('deploys');
    const subscribed = next(sub, 'subscribed');
    client.connect();
    await subscribed;
    assert.deepEqual(proxy.picks, [a.port]);
    const before = next(sub, 'message', (data) => data === 'before');
    await publish(b, 'deploys', 'before');
    await before;

    const drained = next(client, 'disconnected');
    const resubscribed = next(sub, 'subscribed');
    a.proc.kill('SIGTERM');
    const [closed] = await drained;
    assert.deepEqual(closed, { code: 1001, reason: 'server shutting down', willReconnect: true });
    await resubscribed;
    assert.equal(client.state, 'connected');
    assert.equal(proxy.picks.at(-1), b.port, 'reconnected to the gateway that is still ready');
    assert.equal(await within(a.exited, 10_000, 'gateway A to exit'), 0);

    const after = next(sub, 'message', (data) => data === 'after');
    await publish(b, 'deploys', 'after');
    await after;
  });

  describe('with auth', () => {
    let gateway: GatewayProcess;
    const token = (exp: number): Promise<string> => hs256({ subscribe: ['news'], publish: ['news'], exp });

    test('a token that expires: closed with 4001, getToken called, reconnected and resubscribed', async (t) => {
      gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), AUTH_JWT_SECRET: TEST_SECRET, ALLOWED_ORIGINS: 'https://app.example' });
      const calls: number[] = [];
      const client = sdk(gateway.ws(), {
        getToken: async () => {
          calls.push(Date.now());
          return token(calls.length === 1 ? nowSec() + 2 : nowSec() + 3600);
        },
      });
      t.after(() => client.disconnect());
      const sub = client.subscribe('news');
      const first = next(sub, 'subscribed');
      client.connect();
      await first;
      assert.equal(calls.length, 1);

      const expired = next(client, 'disconnected', undefined, 15_000);
      const resubscribed = next(sub, 'subscribed', undefined, 15_000);
      const [closed] = await expired;
      assert.deepEqual(closed, { code: 4001, reason: 'token expired', willReconnect: true });
      await resubscribed;
      assert.equal(calls.length, 2, 'getToken called once more, after the 4001');

      const got = next(sub, 'message', (data) => data === 'fresh');
      await client.publish('news', 'fresh');
      await got;
      await assert.rejects(client.publish('elsewhere', 1), (err: Error & { code?: string }) => err.code === 'forbidden');
    });

    test('a bad token (401) and a foreign origin (403): state disconnected, one error each, no retry loop', async (t) => {
      const refused = async (reason: string, client: HubcastClient, code: string, status: number): Promise<void> => {
        t.after(() => client.disconnect());
        const before = await gateway.metric(`hubcast_upgrades_rejected_total{reason="${reason}"}`);
        const errors: { code: string; status?: number }[] = [];
        client.on('error', (err) => errors.push({ code: err.code, status: err.status }));
        const stopped = next<ClientEvents, 'disconnected'>(client, 'disconnected', (e) => !e.willReconnect);
        client.connect();
        await stopped;
        assert.equal(client.state, 'disconnected');
        assert.deepEqual(errors, [{ code, status }]);
        // Real time can only bound "no retry": ten times the largest backoff window (500 ms) would
        // have seen about a dozen attempts of a client that retried (the unit tests prove none, with mock timers).
        await sleep(1_000);
        assert.equal(await gateway.metric(`hubcast_upgrades_rejected_total{reason="${reason}"}`), before + 1, `one ${status}`);
        assert.equal(errors.length, 1);
      };
      await refused('unauthorized', sdk(gateway.ws(), { token: 'not-a-jwt' }), 'unauthorized', 401);
      // What a browser page on an origin not in ALLOWED_ORIGINS sends.
      class ForeignPage extends WebSocket {
        constructor(url: string) {
          super(url, { origin: 'https://evil.example' });
        }
      }
      const valid = await token(nowSec() + 3600);
      await refused('forbidden', sdk(gateway.ws(), { token: valid, WebSocket: ForeignPage }), 'forbidden', 403);
    });
  });
});

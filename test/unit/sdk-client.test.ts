// HubcastClient against a fake WebSocket (the four members the SDK uses: send, close,
// readyState, event handlers) with mock timers: reconnect rules, token refresh, resubscribe with
// `since`, heartbeat, publish, unsubscribe and duplicate offsets. Nothing here waits in real time.
import assert from 'node:assert/strict';
import { type TestContext, describe, mock, test } from 'node:test';
import { HubcastClient, type HubcastClientOptions } from '../../clients/js/src/client.js';
import { ClientErrorCode, HubcastError } from '../../clients/js/src/errors.js';
import type { SocketLike } from '../../clients/js/src/protocol.js';

type Handler = ((event: never) => void) | null;

class FakeSocket implements SocketLike {
  readyState = 0;
  readonly sent: Record<string, unknown>[] = [];
  closedByClient = false;
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  constructor(readonly url: string) {}
  send(data: string): void {
    assert.equal(this.readyState, 1, 'sends only on an open socket');
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(): void {
    this.closedByClient = true;
    this.readyState = 3;
  }
  // The test's side of the wire.
  open(): void {
    this.readyState = 1;
    (this.onopen as ((e: unknown) => void) | null)?.({});
  }
  receive(frame: Record<string, unknown>): void {
    (this.onmessage as ((e: { data: string }) => void) | null)?.({ data: JSON.stringify(frame) });
  }
  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    (this.onclose as ((e: { code: number; reason: string }) => void) | null)?.({ code, reason });
  }
  /** What a browser shows for a refused upgrade or a gateway that is down: close 1006 before open. */
  fail(): void {
    this.readyState = 3;
    (this.onerror as ((e: unknown) => void) | null)?.({});
    this.serverClose(1006);
  }
  ops(op: string): Record<string, unknown>[] {
    return this.sent.filter((f) => f.op === op);
  }
}

/** Node's `ws` also reports the status of a refused upgrade ('unexpected-response'). */
class FakeWsSocket extends FakeSocket {
  private refused: ((req: unknown, res: { statusCode: number }) => void) | undefined;
  on(event: string, fn: (req: unknown, res: { statusCode: number }) => void): void {
    if (event === 'unexpected-response') this.refused = fn;
  }
  refuse(status: number): void {
    assert.ok(this.refused, 'the client listens for unexpected-response');
    this.refused(null, { statusCode: status });
    assert.ok(this.closedByClient, 'the client aborts the refused handshake');
    this.serverClose(1006); // what ws emits after the abort
  }
}

interface World {
  client: HubcastClient;
  sockets: FakeSocket[];
  last(): FakeSocket;
  events: string[];
  errors: HubcastError[];
  /** Advances mock time and lets promise callbacks run. */
  tick(ms: number): Promise<void>;
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function world(t: TestContext, options: HubcastClientOptions = {}, Socket: typeof FakeSocket = FakeSocket): World {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  t.after(() => mock.timers.reset());
  const sockets: FakeSocket[] = [];
  const client = new HubcastClient('ws://gateway.test/ws', {
    random: () => 0.5,
    WebSocket: class extends Socket {
      constructor(url: string) {
        super(url);
        sockets.push(this);
      }
    },
    ...options,
  });
  const events: string[] = [];
  const errors: HubcastError[] = [];
  client.on('state', ({ state }) => events.push(`state:${state}`));
  client.on('connected', () => events.push('connected'));
  client.on('disconnected', ({ code, willReconnect }) => events.push(`disconnected:${code}:${willReconnect}`));
  client.on('error', (err) => {
    errors.push(err);
    events.push(`error:${err.code}`);
  });
  t.after(() => client.disconnect());
  return {
    client,
    sockets,
    last: () => sockets[sockets.length - 1]!,
    events,
    errors,
    tick: async (ms) => {
      mock.timers.tick(ms);
      await flush();
    },
  };
}

/** Connects and opens the first socket. */
async function connected(t: TestContext, options: HubcastClientOptions = {}): Promise<World> {
  const w = world(t, options);
  w.client.connect();
  await flush();
  w.last().open();
  assert.equal(w.client.state, 'connected');
  return w;
}

describe('HubcastClient: connecting', () => {
  test('connect opens one socket with ?token=, states connecting then connected', async (t) => {
    const w = world(t, { token: 'T.1' });
    w.client.connect();
    w.client.connect();
    assert.equal(w.sockets.length, 1);
    assert.equal(w.last().url, 'ws://gateway.test/ws?token=T.1');
    assert.equal(w.client.state, 'connecting');
    w.last().open();
    assert.deepEqual(w.events, ['state:connecting', 'state:connected', 'connected']);
  });

  test('1001 reconnects soon but spread: after random() * minReconnectDelayMs, not at once', async (t) => {
    const w = await connected(t, { random: () => 0.6, minReconnectDelayMs: 1000 });
    w.last().serverClose(1001, 'server shutting down');
    assert.deepEqual(w.events.slice(-2), ['state:connecting', 'disconnected:1001:true']);
    await w.tick(599);
    assert.equal(w.sockets.length, 1, 'not yet');
    await w.tick(1);
    assert.equal(w.sockets.length, 2, 'at 600 ms');
  });

  test('1006 backs off with full jitter, growing per failed attempt, and reports each failure', async (t) => {
    const w = await connected(t, { random: () => 0.999 });
    w.last().serverClose(1006);
    const gaps: number[] = [];
    for (let i = 0; i < 7; i++) {
      const before = w.sockets.length;
      let waited = 0;
      while (w.sockets.length === before) {
        await w.tick(1);
        waited++;
        assert.ok(waited <= 20_000, 'never beyond maxReconnectDelayMs');
      }
      gaps.push(waited);
      w.last().fail();
    }
    assert.deepEqual(gaps, [499, 999, 1998, 3996, 7992, 15984, 19980]);
    assert.equal(w.errors.filter((e) => e.code === ClientErrorCode.ConnectFailed).length, 7, "an 'error' per failed attempt");
    assert.equal(w.client.state, 'connecting', 'a browser cannot tell refused from down: it keeps trying, slowly');
  });

  test('4001 calls getToken before reconnecting, and the new token is used', async (t) => {
    const tokens = ['first', 'second'];
    const calls: number[] = [];
    const w = world(t, {
      getToken: async () => {
        calls.push(w.sockets.length);
        return tokens.shift()!;
      },
    });
    w.client.connect();
    await flush();
    assert.deepEqual(calls, [0], 'no token given: fetched before the first connect');
    assert.match(w.last().url, /token=first$/);
    w.last().open();
    w.last().serverClose(4001, 'token expired');
    await w.tick(250);
    assert.deepEqual(calls, [0, 1], 'fetched again after 4001, before the second socket');
    assert.equal(w.sockets.length, 2);
    assert.match(w.last().url, /token=second$/);
    w.last().open();
    assert.equal(w.client.state, 'connected');
    assert.deepEqual(w.errors, []);
  });

  test('a token that expired while the connection was down is fetched anew before reconnecting (no 4001 came)', async (t) => {
    const expOf = (url: string): number =>
      (JSON.parse(Buffer.from(url.split('token=')[1]!.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
    let calls = 0;
    const w = world(t, {
      getToken: async () => {
        calls++;
        return `h.${Buffer.from(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.s`;
      },
    });
    const createdAt = new Map<FakeSocket, number>();
    w.client.connect();
    await flush();
    w.last().open();
    w.last().serverClose(1006);
    // The gateway is down for two minutes: every attempt fails before open.
    for (let ms = 0; ms < 120_000; ms += 100) {
      const socket = w.last();
      if (!createdAt.has(socket)) {
        createdAt.set(socket, Date.now());
        if (socket !== w.sockets[0]) socket.fail();
      }
      await w.tick(100);
    }
    assert.ok(calls >= 2, `getToken called again (${calls})`);
    for (const [socket, at] of createdAt) assert.ok(expOf(socket.url) > at, `a live token at every attempt (${socket.url})`);
    assert.ok(w.sockets.length < 20, `still backing off (${w.sockets.length} attempts in 2 minutes)`);
  });

  test('a 401 for a reused token fetches a new one once; a 401 for the new one stops', async (t) => {
    let calls = 0;
    const w = world(
      t,
      {
        getToken: async () => `opaque-${++calls}`,
      },
      FakeWsSocket,
    );
    w.client.connect();
    await flush();
    w.last().open();
    w.last().serverClose(1006);
    await w.tick(250);
    (w.last() as FakeWsSocket).refuse(401);
    assert.equal(w.client.state, 'connecting');
    await w.tick(250);
    assert.equal(calls, 2);
    assert.match(w.last().url, /token=opaque-2$/);
    (w.last() as FakeWsSocket).refuse(401);
    assert.equal(w.client.state, 'disconnected');
    assert.deepEqual(w.errors.map((e) => e.code), [ClientErrorCode.Unauthorized]);
    await w.tick(600_000);
    assert.equal(calls, 2);
    assert.equal(w.sockets.length, 3);
  });

  test('a getToken that fails is reported and retried with backoff', async (t) => {
    let fail = true;
    const w = world(t, {
      getToken: async () => {
        if (fail) throw new Error('identity service down');
        return 'ok';
      },
    });
    w.client.connect();
    await flush();
    assert.equal(w.sockets.length, 0);
    assert.equal(w.errors[0]?.code, ClientErrorCode.TokenFailed);
    assert.match(w.errors[0]!.message, /identity service down/);
    fail = false;
    await w.tick(250);
    assert.equal(w.sockets.length, 1);
  });

  test('4001 without getToken, 1008, 401 and 403: state disconnected, one error, and no attempt ever after', async (t) => {
    const cases: [string, (s: FakeWsSocket) => void, string][] = [
      ['4001', (s) => (s.open(), s.serverClose(4001, 'token expired')), ClientErrorCode.TokenExpired],
      ['1008', (s) => (s.open(), s.serverClose(1008, 'rate limit exceeded')), ClientErrorCode.RateLimited],
      ['401', (s) => s.refuse(401), ClientErrorCode.Unauthorized],
      ['403', (s) => s.refuse(403), ClientErrorCode.Forbidden],
    ];
    for (const [name, end, code] of cases) {
      await t.test(name, async (st) => {
        const w = world(st, { token: 'x' }, FakeWsSocket);
        w.client.connect();
        end(w.last() as FakeWsSocket);
        assert.equal(w.client.state, 'disconnected');
        assert.deepEqual(
          w.errors.map((e) => e.code),
          [code],
        );
        assert.match(w.errors[0]!.message, /stopped$/);
        if (name === '401') assert.equal(w.errors[0]!.status, 401);
        assert.equal(w.events.filter((e) => e.startsWith('disconnected')).at(-1), `disconnected:${name.length === 4 ? name : 1006}:false`);
        await w.tick(10 * 60_000);
        assert.equal(w.sockets.length, 1, 'no retry, however long');
      });
    }
  });

  test('a 503 at upgrade (draining, full) is retried with backoff', async (t) => {
    const w = world(t, {}, FakeWsSocket);
    w.client.connect();
    (w.last() as FakeWsSocket).refuse(503);
    assert.equal(w.client.state, 'connecting');
    assert.equal(w.errors[0]?.status, 503);
    await w.tick(250);
    assert.equal(w.sockets.length, 2);
  });

  test('disconnect() closes, stops reconnecting, and emits disconnected once', async (t) => {
    const w = await connected(t);
    const socket = w.last();
    w.client.disconnect();
    w.client.disconnect();
    assert.ok(socket.closedByClient);
    assert.equal(w.client.state, 'disconnected');
    assert.deepEqual(w.events.slice(-2), ['state:disconnected', 'disconnected:1000:false']);
    socket.serverClose(1000); // the late close of the old socket changes nothing
    await w.tick(60_000);
    assert.equal(w.sockets.length, 1);
  });
});

describe('HubcastClient: heartbeat', () => {
  test('pings after half of heartbeatTimeoutMs in silence; any reply (even unknown_op) keeps it alive', async (t) => {
    const w = await connected(t, { heartbeatTimeoutMs: 10_000 });
    await w.tick(4_999);
    assert.equal(w.last().ops('ping').length, 0);
    await w.tick(1);
    const [ping] = w.last().ops('ping');
    assert.ok(ping, 'a ping after 5 s idle');
    // A gateway without the ping op answers unknown_op with the same id.
    w.last().receive({ op: 'error', code: 'unknown_op', message: 'op must be subscribe, unsubscribe or publish', id: ping.id });
    await w.tick(9_000);
    assert.equal(w.client.state, 'connected');
    assert.deepEqual(w.errors, [], 'the ping reply is not an error for the application');
  });

  test('nothing for heartbeatTimeoutMs: the connection is dropped as dead and the client reconnects', async (t) => {
    const w = await connected(t, { heartbeatTimeoutMs: 10_000 });
    await w.tick(9_999);
    assert.equal(w.client.state, 'connected');
    await w.tick(1);
    assert.ok(w.sockets[0]!.closedByClient);
    assert.equal(w.events.at(-1), 'disconnected:1006:true');
    await w.tick(250);
    assert.equal(w.sockets.length, 2);
  });

  test('messages keep an idle-looking connection alive without pings', async (t) => {
    const w = await connected(t, { heartbeatTimeoutMs: 10_000 });
    for (let i = 0; i < 10; i++) {
      await w.tick(4_000);
      w.last().receive({ op: 'message', channel: 'none', data: i });
    }
    assert.equal(w.last().ops('ping').length, 0);
    assert.equal(w.client.state, 'connected');
  });
});

describe('HubcastClient: publish', () => {
  test('while disconnected or connecting it rejects at once with code disconnected; nothing is sent later', async (t) => {
    const w = world(t);
    await assert.rejects(w.client.publish('news', 1), (err: HubcastError) => err.code === ClientErrorCode.Disconnected);
    w.client.connect();
    await assert.rejects(w.client.publish('news', 2), (err: HubcastError) => err.code === ClientErrorCode.Disconnected);
    w.last().open();
    assert.equal(w.last().ops('publish').length, 0, 'refused publishes are not queued');
  });

  test('resolves on the ack, rejects with the gateway code, times out with code timeout', async (t) => {
    const w = await connected(t, { timeoutMs: 1000 });
    const ok = w.client.publish('news', { a: 1 });
    const refused = w.client.publish('secret', 2);
    const lost = w.client.publish('news', 3);
    const [p1, p2] = w.last().ops('publish');
    assert.deepEqual([p1!.channel, p1!.data], ['news', { a: 1 }]);
    w.last().receive({ op: 'ack', id: p1!.id });
    w.last().receive({ op: 'error', code: 'forbidden', message: 'no', id: p2!.id });
    await ok;
    await assert.rejects(refused, (err: HubcastError) => err instanceof HubcastError && err.code === 'forbidden');
    let settled = false;
    const timedOut = assert.rejects(lost, (err: HubcastError) => err.code === ClientErrorCode.Timeout);
    void timedOut.finally(() => (settled = true));
    await w.tick(999);
    assert.equal(settled, false, 'still waiting just before timeoutMs');
    await w.tick(1);
    await timedOut;
  });

  test('a publish waiting for its ack when the connection drops rejects with disconnected', async (t) => {
    const w = await connected(t);
    const waiting = w.client.publish('news', 1);
    w.last().serverClose(1006);
    await assert.rejects(waiting, (err: HubcastError) => err.code === ClientErrorCode.Disconnected);
  });
});

describe('HubcastClient: subscriptions', () => {
  test('subscribe before connect is sent on open; messages reach the listener with their position', async (t) => {
    const w = world(t);
    const sub = w.client.subscribe('news');
    assert.throws(() => w.client.subscribe('news'), (err: HubcastError) => err.code === ClientErrorCode.AlreadySubscribed);
    const got: unknown[] = [];
    const subscribed: unknown[] = [];
    sub.on('message', (data, { offset, epoch }) => got.push([data, offset, epoch]));
    sub.on('subscribed', (e) => subscribed.push(e));
    w.client.connect();
    w.last().open();
    const [s] = w.last().ops('subscribe');
    assert.deepEqual(s, { op: 'subscribe', channel: 'news', id: s!.id }, 'no since on a first subscribe');
    w.last().receive({ op: 'ack', id: s!.id, offset: 3, epoch: 'E' });
    assert.equal(sub.state, 'subscribed');
    assert.deepEqual(subscribed, [{ wasRecovering: false, recovered: false, position: { offset: 3, epoch: 'E' } }]);
    w.last().receive({ op: 'message', channel: 'news', data: 'a', offset: 4, epoch: 'E' });
    w.last().receive({ op: 'message', channel: 'other', data: 'x', offset: 1, epoch: 'E' });
    assert.deepEqual(got, [['a', 4, 'E']]);
    assert.deepEqual(sub.position, { offset: 4, epoch: 'E' });
  });

  test('after a reconnect every subscription is resubscribed with since; recovered:true replays without duplicates', async (t) => {
    const w = await connected(t);
    const sub = w.client.subscribe('news');
    const got: number[] = [];
    const subscribed: boolean[] = [];
    sub.on('message', (_data, { offset }) => got.push(offset!));
    sub.on('subscribed', ({ recovered }) => subscribed.push(recovered));
    const first = w.last();
    first.receive({ op: 'ack', id: first.ops('subscribe')[0]!.id, offset: 0, epoch: 'E' });
    for (const offset of [1, 2, 3]) first.receive({ op: 'message', channel: 'news', data: offset, offset, epoch: 'E' });
    first.serverClose(1001);
    assert.equal(sub.state, 'subscribing');
    await w.tick(250);
    const second = w.last();
    second.open();
    const [s] = second.ops('subscribe');
    assert.deepEqual(s, { op: 'subscribe', channel: 'news', id: s!.id, since: { offset: 3, epoch: 'E' } });
    second.receive({ op: 'ack', id: s!.id, offset: 6, epoch: 'E', recovered: true });
    // The replay, a duplicate at the seam, then live.
    for (const offset of [4, 5, 6, 6, 3, 7]) second.receive({ op: 'message', channel: 'news', data: offset, offset, epoch: 'E' });
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7], 'every offset once, in order');
    assert.deepEqual(subscribed, [false, true]);
  });

  test('recovered:false and lost frames reach the application; it continues from the new position', async (t) => {
    const w = await connected(t);
    const sub = w.client.subscribe('news');
    const log: string[] = [];
    sub.on('message', (_d, { offset, epoch }) => log.push(`m${offset}${epoch}`));
    sub.on('subscribed', ({ recovered, wasRecovering }) => log.push(`s:${wasRecovering}:${recovered}`));
    sub.on('lost', ({ offset, epoch }) => log.push(`lost${offset}${epoch}`));
    w.last().receive({ op: 'ack', id: w.last().ops('subscribe')[0]!.id, offset: 1, epoch: 'A' });
    w.last().receive({ op: 'message', channel: 'news', data: 0, offset: 2, epoch: 'A' });
    w.last().receive({ op: 'lost', channel: 'news', offset: 8, epoch: 'A' });
    w.last().receive({ op: 'message', channel: 'news', data: 0, offset: 9, epoch: 'A' });
    w.last().serverClose(1013, 'slow consumer');
    await w.tick(250);
    w.last().open();
    const [s] = w.last().ops('subscribe');
    assert.deepEqual(s!.since, { offset: 9, epoch: 'A' });
    w.last().receive({ op: 'ack', id: s!.id, offset: 4, epoch: 'B', recovered: false });
    w.last().receive({ op: 'message', channel: 'news', data: 0, offset: 4, epoch: 'B' });
    w.last().receive({ op: 'message', channel: 'news', data: 0, offset: 5, epoch: 'B' });
    assert.deepEqual(log, ['s:false:false', 'm2A', 'lost8A', 'm9A', 's:true:false', 'm5B']);
  });

  test('unsubscribe stops events at once and tells the gateway; a refused subscribe ends the subscription', async (t) => {
    const w = await connected(t);
    const sub = w.client.subscribe('news');
    const got: unknown[] = [];
    sub.on('message', (d) => got.push(d));
    w.last().receive({ op: 'ack', id: w.last().ops('subscribe')[0]!.id });
    w.last().receive({ op: 'message', channel: 'news', data: 1 });
    sub.unsubscribe();
    w.last().receive({ op: 'message', channel: 'news', data: 2 });
    assert.deepEqual(got, [1]);
    assert.equal(sub.state, 'unsubscribed');
    assert.deepEqual(w.last().ops('unsubscribe').map((f) => f.channel), ['news']);
    w.last().serverClose(1006);
    await w.tick(250);
    w.last().open();
    assert.equal(w.last().ops('subscribe').length, 0, 'not resubscribed after a reconnect');

    const secret = w.client.subscribe('secret');
    const errors: string[] = [];
    secret.on('error', (err) => errors.push(err.code));
    w.last().receive({ op: 'error', code: 'forbidden', message: 'no', id: w.last().ops('subscribe')[0]!.id });
    assert.deepEqual(errors, ['forbidden']);
    assert.equal(secret.state, 'unsubscribed');
    const again = w.client.subscribe('secret'); // the channel is free again
    assert.equal(again.state, 'subscribing');
  });

  test('a subscribe without an ack within timeoutMs drops the connection and resubscribes on the next', async (t) => {
    const w = await connected(t, { timeoutMs: 2000 });
    w.client.subscribe('news');
    await w.tick(2000);
    assert.ok(w.sockets[0]!.closedByClient);
    assert.equal(w.events.at(-1), 'disconnected:1006:true');
    await w.tick(250);
    w.last().open();
    assert.equal(w.last().ops('subscribe').length, 1);
  });

  test('without history, messages carry no position and all are delivered', async (t) => {
    const w = await connected(t);
    const sub = w.client.subscribe('news');
    const got: unknown[] = [];
    sub.on('message', (d, ctx) => got.push([d, ctx.offset, ctx.epoch]));
    w.last().receive({ op: 'ack', id: w.last().ops('subscribe')[0]!.id });
    w.last().receive({ op: 'message', channel: 'news', data: 'x' });
    w.last().receive({ op: 'message', channel: 'news', data: 'x' });
    assert.deepEqual(got, [['x', undefined, undefined], ['x', undefined, undefined]]);
    w.last().serverClose(1006);
    await w.tick(250);
    w.last().open();
    assert.equal(w.last().ops('subscribe')[0]!.since, undefined);
  });
});

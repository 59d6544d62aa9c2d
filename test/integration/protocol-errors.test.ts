// Bad client input: each gets its error frame (connection stays open) or its close code, and
// other clients keep being served throughout.
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { once } from 'node:events';
import { before, describe, test } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';
import { waitUntil, within } from '../helpers/wait.js';

describe('protocol errors', { timeout: 60_000 }, () => {
  const fx = useFixture();
  let gateway: GatewayProcess;
  let watcher: TestClient;
  let publisher: TestClient;
  let seq = 0;
  const connect = (url: string): Promise<TestClient> => fx.connect(url);

  /** A message published now still reaches a well-behaved client on the same gateway. */
  const stillServed = async (...extra: TestClient[]): Promise<void> => {
    const data = `ping-${++seq}`;
    assert.equal((await publisher.request({ op: 'publish', channel: 'lobby', data })).op, 'ack');
    for (const c of [watcher, ...extra]) await c.waitFor((f) => f.data === data);
  };

  before(async () => {
    gateway = await fx.gateway({
      REDIS_PREFIX: uniquePrefix(),
      MAX_MESSAGE_BYTES: '4096',
      QUEUE_MAX_BYTES: '65536',
      PING_INTERVAL_MS: '300',
    });
    watcher = await connect(gateway.ws(['lobby']));
    publisher = await connect(gateway.ws());
  });

  const cases: [string, unknown, string][] = [
    ['invalid JSON', '{"op":', 'invalid_json'],
    ['a JSON array', '[1,2]', 'invalid_json'],
    ['an unknown op', { op: 'shout', channel: 'lobby' }, 'unknown_op'],
    ['a missing op', { channel: 'lobby' }, 'invalid_message'],
    ['an invalid channel', { op: 'subscribe', channel: 'no spaces/allowed' }, 'invalid_channel'],
    ['a too-long channel', { op: 'subscribe', channel: 'x'.repeat(129) }, 'invalid_channel'],
    ['a publish without data', { op: 'publish', channel: 'lobby' }, 'invalid_message'],
  ];
  for (const [name, frame, code] of cases) {
    test(`${name} gets error ${code} and the connection stays open`, async () => {
      const client = await connect(gateway.ws(['lobby']));
      client.send(frame);
      const error = await client.waitFor((f) => f.op === 'error');
      assert.equal(error.code, code);
      assert.equal(typeof error.message, 'string');
      await stillServed(client);
    });
  }

  test('a binary frame gets binary_not_supported and the connection stays open', async () => {
    const client = await connect(gateway.ws(['lobby']));
    client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await client.waitFor((f) => f.op === 'error')).code, 'binary_not_supported');
    await stillServed(client);
  });

  test('an error names the request id it answers', async () => {
    const client = await connect(gateway.ws());
    const reply = await client.request({ op: 'subscribe', channel: '' });
    assert.deepEqual([reply.op, reply.code], ['error', 'invalid_channel']);
  });

  test('a frame over MAX_MESSAGE_BYTES closes the connection with 1009', async () => {
    const client = await connect(gateway.ws(['lobby']));
    client.send({ op: 'publish', channel: 'lobby', data: 'x'.repeat(5000) });
    assert.equal((await client.closed).code, 1009);
    await stillServed();
  });

  test('a text frame that is not UTF-8 closes the connection with 1007', async () => {
    const client = await connect(gateway.ws());
    // ws validates outgoing strings, so send the raw frame on the socket: FIN+text, masked, 2 bytes.
    const mask = Buffer.from([1, 2, 3, 4]);
    const payload = Buffer.from([0xff, 0xfe]).map((b, i) => b ^ mask[i % 4]!);
    client.socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload]));
    assert.equal((await client.closed).code, 1007);
    await stillServed();
  });

  test('too many subscriptions get too_many_channels', async () => {
    const client = await connect(gateway.ws());
    for (let i = 0; i < 128; i++) client.send({ op: 'subscribe', channel: `c${i}` });
    const reply = await client.request({ op: 'subscribe', channel: 'one-too-many' });
    assert.equal(reply.code, 'too_many_channels');
    await stillServed();
  });

  test('upgrades to other paths or with bad ?channels are refused before the handshake', async () => {
    await assert.rejects(TestClient.connect(`ws://127.0.0.1:${gateway.port}/nope`), /HTTP 404/);
    await assert.rejects(TestClient.connect(`ws://127.0.0.1:${gateway.port}/ws?channels=ok,bad%20name`), /HTTP 400/);
    const res = await fetch(`${gateway.http}/ws`);
    assert.equal(res.status, 426);
    const post = await fetch(`${gateway.http}/ws`, { method: 'POST', body: '{}' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
    await stillServed();
  });

  test("a client's ping is answered with a pong carrying its payload", async () => {
    const client = await connect(gateway.ws());
    const pong = once(client.ws, 'pong');
    client.ws.ping(Buffer.from('are you there'));
    const [payload] = (await within(pong, 5000, 'the pong')) as [Buffer];
    assert.equal(payload.toString(), 'are you there');
  });

  test('a peer that never answers pings is terminated', async () => {
    // A raw TCP client completes the handshake and then ignores every frame, pings included.
    const socket = tcpConnect(gateway.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.resume(); // read and discard, so the close is seen
    await once(socket, 'connect');
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const before = await gateway.metric('hubcast_clients_evicted_total{reason="heartbeat_timeout"}');
    await within(once(socket, 'close'), 5000, 'the silent peer to be terminated');
    await waitUntil(
      async () => (await gateway.metric('hubcast_clients_evicted_total{reason="heartbeat_timeout"}')) === before + 1,
      { what: 'the heartbeat eviction to be counted' },
    );
    // Well-behaved clients answer pings (ws does so itself) and stay.
    await stillServed();
    assert.equal(watcher.ws.readyState, watcher.ws.OPEN);
  });

  test('protocol errors are counted by code', async () => {
    const m = await gateway.metrics();
    assert.ok(m.get('hubcast_protocol_errors_total{code="invalid_json"}')! >= 2);
    assert.ok(m.get('hubcast_protocol_errors_total{code="unknown_op"}')! >= 1);
    assert.equal(m.get('hubcast_publishes_rejected_total{source="ws",reason="invalid"}'), 1);
  });
});

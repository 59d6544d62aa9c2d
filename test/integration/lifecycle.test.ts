// Process lifecycle: the embedded bus of `npm start`, the SIGTERM drain, and config errors at start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { describe, test } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { MAIN, startGateway } from '../helpers/gateway.js';
import { within } from '../helpers/wait.js';

describe('embedded bus (no REDIS_URL)', { timeout: 30_000 }, () => {
  test('one gateway serves /ws, subscribe, publish and metrics with no Redis', async (t) => {
    const gateway = await startGateway({});
    t.after(() => gateway.kill());
    assert.equal(await gateway.readyz(), 200);
    const body = (await (await fetch(`${gateway.http}/readyz`)).json()) as { bus: string };
    assert.equal(body.bus, 'memory');

    const a = await TestClient.connect(gateway.ws(['chat']));
    const b = await TestClient.connect(gateway.ws());
    t.after(() => {
      a.close();
      b.close();
    });
    assert.equal((await b.request({ op: 'subscribe', channel: 'chat' })).op, 'ack');
    assert.equal((await b.request({ op: 'publish', channel: 'chat', data: 1 })).op, 'ack');
    assert.equal((await fetch(`${gateway.http}/publish`, { method: 'POST', body: '{"channel":"chat","data":2}' })).status, 202);
    for (const c of [a, b]) {
      await c.waitForCount(() => c.messages('chat').length, 2);
      assert.deepEqual(c.messages('chat').map((m) => m.data), [1, 2]);
    }
    assert.equal(await gateway.metric('hubcast_info{bus="memory"}'), 1);
    assert.equal(await gateway.metric('hubcast_bus_connected{connection="subscriber"}'), 1);
    assert.equal(await gateway.metric('hubcast_connections_open'), 2);
  });
});

describe('hostile data (embedded bus)', { timeout: 30_000 }, () => {
  test('data too deeply nested to re-encode is refused over WS and HTTP; the gateway keeps serving', async (t) => {
    const gateway = await startGateway({});
    t.after(() => gateway.kill());
    const client = await TestClient.connect(gateway.ws(['deep']));
    t.after(() => client.close());
    // 30,000 levels fit in 64 KiB and parse, but JSON.stringify would overflow the stack.
    const depth = 30_000;
    const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    client.send(`{"op":"publish","channel":"deep","id":7,"data":${deep}}`);
    const reply = await client.waitFor((f) => f.id === 7);
    assert.deepEqual([reply.op, reply.code], ['error', 'invalid_message']);
    const res = await fetch(`${gateway.http}/publish`, { method: 'POST', body: `{"channel":"deep","data":${deep}}` });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { code: string }).code, 'invalid_message');
    assert.equal((await client.request({ op: 'publish', channel: 'deep', data: 'fine' })).op, 'ack');
    await client.waitFor((f) => f.data === 'fine');
    assert.equal(await gateway.metric('hubcast_publishes_rejected_total{source="ws",reason="invalid"}'), 1);
    assert.equal(gateway.proc.exitCode, null);
  });
});

describe('SIGTERM drain', { timeout: 30_000 }, () => {
  test('readyz 503 at once, new upgrades refused, clients closed with 1001 after DRAIN_MS, exit 0', async (t) => {
    const gateway = await startGateway({ DRAIN_MS: '1000' });
    t.after(() => gateway.kill());
    const client = await TestClient.connect(gateway.ws(['chat']));
    t.after(() => client.close());

    const signalled = Date.now();
    gateway.proc.kill('SIGTERM');
    await gateway.waitReady(503, 900);
    await assert.rejects(TestClient.connect(gateway.ws()), /HTTP 503/, 'no new upgrades while draining');
    // Still served during the drain.
    assert.equal((await fetch(`${gateway.http}/publish`, { method: 'POST', body: '{"channel":"chat","data":"draining"}' })).status, 202);
    await client.waitFor((f) => f.data === 'draining');

    const closed = await within(client.closed, 5000, 'the 1001 close');
    assert.deepEqual(closed, { code: 1001, reason: 'server shutting down' });
    assert.ok(Date.now() - signalled >= 900, 'clients are closed only after DRAIN_MS');
    assert.equal(await within(gateway.exited, 5000, 'the process to exit'), 0);
    assert.ok(gateway.logs.some((l) => l.msg === 'stopped'));
  });

  test('SIGINT drains the same way and exits 0 with no clients', async (t) => {
    const gateway = await startGateway({ DRAIN_MS: '0' });
    t.after(() => gateway.kill());
    gateway.proc.kill('SIGINT');
    assert.equal(await within(gateway.exited, 5000, 'the process to exit'), 0);
  });
});

/** Runs the gateway with only this environment until it exits; its exit code, stdout and stderr lines. */
async function runToExit(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string[] }> {
  const proc = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const [code] = (await within(once(proc, 'exit'), 10_000, 'the process to exit')) as [number];
  return { code, stdout, stderr: stderr.trimEnd().split('\n') };
}

describe('config errors', { timeout: 30_000 }, () => {
  const bad: [string, string][] = [
    ['QUEUE_MAX_MESSAGES', 'lots'],
    ['OVERFLOW_POLICY', 'drop-everything'],
    ['PORT', '99999'],
    ['REDIS_URL', 'http://localhost:6379'],
    ['LOG_LEVEL', 'loud'],
    ['PORT', ' 8080'],
    ['REDIS_URL', ''],
  ];
  for (const [name, value] of bad) {
    test(`${name}=${JSON.stringify(value)} exits non-zero with one line naming ${name}`, async () => {
      const { code, stdout, stderr } = await runToExit({ [name]: value });
      assert.equal(code, 78);
      assert.equal(stderr.length, 1, `one line, got: ${stderr.join('\n')}`);
      assert.match(stderr[0]!, new RegExp(`^invalid config: ${name} `));
      assert.equal(stdout, '');
    });
  }
});

describe('listen errors', { timeout: 30_000 }, () => {
  test('a PORT already in use exits 1 with one line naming PORT and the address', async (t) => {
    const holder = createServer();
    t.after(() => holder.close());
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    const { code, stdout, stderr } = await runToExit({ PORT: String(port), HOST: '127.0.0.1' });
    assert.equal(code, 1);
    assert.deepEqual(stderr, [`cannot listen: PORT ${port} is already in use on 127.0.0.1 (EADDRINUSE)`]);
    assert.doesNotMatch(stdout, /EADDRINUSE|\bat /, 'no stack trace on stdout either');
  });

  test('a HOST that does not resolve exits 1 with one line naming HOST', async () => {
    const { code, stderr } = await runToExit({ PORT: '0', HOST: '999.1.1.1' });
    assert.equal(code, 1);
    assert.equal(stderr.length, 1, `one line, got: ${stderr.join('\n')}`);
    assert.match(stderr[0]!, /^cannot listen: HOST 999\.1\.1\.1 does not resolve to an address \(E[A-Z_]+\)$/);
  });
});

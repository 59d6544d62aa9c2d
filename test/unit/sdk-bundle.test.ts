// The browser bundle: build.mjs's esbuild step writes one self-contained ESM file that exports
// HubcastClient, and the bundled client works (against a fake WebSocket).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';

const ROOT = new URL('../../../', import.meta.url);

interface BundledClient {
  state: string;
  connect(): void;
  disconnect(): void;
  subscribe(channel: string): { on(event: 'message', fn: (data: unknown, ctx: { offset?: number }) => void): void };
}

describe('browser bundle', { timeout: 60_000 }, () => {
  test('npm run build:client runs build.mjs; its bundle is one ESM file with no imports, exporting HubcastClient', async (t) => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts['build:client'], 'node clients/js/build.mjs');
    const dir = mkdtempSync(join(tmpdir(), 'hubcast-bundle-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const { bundle } = (await import(new URL('clients/js/build.mjs', ROOT).href)) as { bundle(outfile: string): Promise<string> };
    const file = await bundle(join(dir, 'hubcast.js'));
    const code = readFileSync(file, 'utf8');
    assert.doesNotMatch(code, /^\s*import\s/m, 'no import statements: nothing to resolve in a browser');
    assert.doesNotMatch(code, /\brequire\(|\bprocess\.|from ["']node:/, 'nothing Node-only');
    assert.match(code, /export\s*\{[^}]*\bHubcastClient\b/);

    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    assert.equal(typeof mod.HubcastClient, 'function');
    assert.equal(typeof mod.HubcastError, 'function');

    // The bundled class runs: connect, subscribe, receive.
    const sent: string[] = [];
    let socket: { onopen(): void; onmessage(e: { data: string }): void; readyState: number } | undefined;
    class Fake {
      readyState = 0;
      onopen: (() => void) | null = null;
      onmessage: ((e: { data: string }) => void) | null = null;
      onclose: (() => void) | null = null;
      onerror: (() => void) | null = null;
      constructor(readonly url: string) {
        socket = this as never;
      }
      send(data: string): void {
        sent.push(data);
      }
      close(): void {
        this.readyState = 3;
      }
    }
    const Client = mod.HubcastClient as new (url: string, options: object) => BundledClient;
    const client = new Client('ws://example.test/ws', { WebSocket: Fake, token: 'abc', heartbeatTimeoutMs: 0 });
    t.after(() => client.disconnect());
    const got: unknown[] = [];
    client.subscribe('news').on('message', (data, { offset }) => got.push([data, offset]));
    client.connect();
    assert.equal((socket as unknown as Fake).url, 'ws://example.test/ws?token=abc');
    socket!.readyState = 1;
    socket!.onopen();
    assert.equal(client.state, 'connected');
    const { id } = JSON.parse(sent[0]!) as { id: number };
    socket!.onmessage({ data: JSON.stringify({ op: 'ack', id, offset: 0, epoch: 'e' }) });
    socket!.onmessage({ data: JSON.stringify({ op: 'message', channel: 'news', data: 'hi', offset: 1, epoch: 'e' }) });
    assert.deepEqual(got, [['hi', 1]]);
  });
});

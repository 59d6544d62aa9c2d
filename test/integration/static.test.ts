// GET / and GET /hubcast.js on a real gateway (in process, memory bus) over real HTTP: the page
// and the bundle the build put in dist/services/gateway/static/, ETag and 304, HEAD, 405, nothing
// else served from disk, SERVE_CLIENT=false; the welcome frame; and the Docker build stage's
// static step run in a copy of what its build context holds.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { loadConfig } from '../../services/gateway/src/config.js';
import { type Gateway, startGateway } from '../../services/gateway/src/gateway.js';
import { STATIC_DIR } from '../../services/gateway/src/static.js';
import { TestClient } from '../helpers/client.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PAGE_SOURCE = readFileSync(join(ROOT, 'clients/js/demo/index.html'));

async function gateway(env: Record<string, string> = {}): Promise<{ gateway: Gateway; http: string }> {
  const g = await startGateway(loadConfig({ PORT: '0', HOST: '127.0.0.1', DRAIN_MS: '0', ...env }), pino({ level: 'silent' }));
  return { gateway: g, http: `http://127.0.0.1:${g.port}` };
}

/** A raw request, so the path goes out exactly as written (fetch would normalise `..`). */
function raw(base: string, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.end();
  });
}

describe('demo page and bundle routes', { timeout: 60_000 }, () => {
  let on: { gateway: Gateway; http: string };
  before(async () => {
    for (const file of ['index.html', 'hubcast.js']) {
      assert.ok(existsSync(new URL(file, STATIC_DIR)), `dist/services/gateway/static/${file} is built (npm run build)`);
    }
    on = await gateway();
  });
  after(() => on?.gateway.shutdown());

  test('GET / is the demo page as built from clients/js/demo/index.html: HTML, strong ETag, no-cache', async () => {
    const res = await raw(on.http, 'GET', '/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.match(String(res.headers.etag), /^"[A-Za-z0-9_-]+"$/, 'strong: no W/');
    assert.equal(Number(res.headers['content-length']), PAGE_SOURCE.length);
    assert.deepEqual(res.body, PAGE_SOURCE);
    assert.match(res.body.toString(), /import \{ HubcastClient \} from '\.\/hubcast\.js'/);
    const query = await raw(on.http, 'GET', '/?channels=a,b');
    assert.equal(query.status, 200, 'the page takes its options in the query');
    assert.equal(query.headers.etag, res.headers.etag);
  });

  test('GET /hubcast.js is the SDK bundle: JavaScript, one ESM file exporting HubcastClient', async () => {
    const res = await raw(on.http, 'GET', '/hubcast.js');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(res.headers['cache-control'], 'no-cache');
    const code = res.body.toString();
    assert.match(code, /export\s*\{[^}]*\bHubcastClient\b/);
    assert.doesNotMatch(code, /^\s*import\s/m);
    assert.deepEqual(res.body, readFileSync(new URL('hubcast.js', STATIC_DIR)));
  });

  test('If-None-Match with the ETag: 304, no body; a stale tag: 200; HEAD: the headers, no body', async () => {
    for (const path of ['/', '/hubcast.js']) {
      const first = await raw(on.http, 'GET', path);
      const etag = String(first.headers.etag);
      const cached = await raw(on.http, 'GET', path, { 'if-none-match': etag });
      assert.equal(cached.status, 304, path);
      assert.equal(cached.body.length, 0);
      assert.equal(cached.headers.etag, etag);
      assert.equal(cached.headers['cache-control'], 'no-cache');
      assert.equal((await raw(on.http, 'GET', path, { 'if-none-match': `"stale", W/${etag}` })).status, 304, 'a list, weak form');
      assert.equal((await raw(on.http, 'GET', path, { 'if-none-match': '"stale"' })).status, 200);
      const head = await raw(on.http, 'HEAD', path);
      assert.equal(head.status, 200);
      assert.equal(head.body.length, 0);
      assert.equal(head.headers.etag, etag);
      assert.equal(head.headers['content-length'], first.headers['content-length']);
    }
  });

  test('other methods: 405 with Allow; nothing else is served from disk', async () => {
    const post = await raw(on.http, 'POST', '/');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    assert.equal(JSON.parse(post.body.toString()).code, 'method_not_allowed');
    for (const path of ['/index.html', '/hubcast.js.map', '/static/index.html', '/../package.json', '/%2e%2e/package.json', '/hubcast.js/', '//hubcast.js', '/HUBCAST.JS']) {
      const res = await raw(on.http, 'GET', path);
      assert.equal(res.status, 404, path);
      assert.equal(JSON.parse(res.body.toString()).code, 'not_found', path);
    }
  });

  test('a WebSocket that asks with ?welcome gets the welcome first, naming the gateway; without, no welcome', async (t) => {
    const ws = `ws://127.0.0.1:${on.gateway.port}/ws`;
    const asked = await TestClient.connect(`${ws}?welcome&channels=news`);
    t.after(() => asked.close());
    const welcome = await asked.waitFor((f) => f.op === 'welcome');
    assert.deepEqual(asked.frames[0], welcome, 'the first frame');
    assert.equal((welcome as { gateway?: string }).gateway, `127.0.0.1:${on.gateway.port}`);
    assert.equal(typeof (welcome as { host?: string }).host, 'string');
    const plain = await TestClient.connect(`${ws}?channels=news`);
    t.after(() => plain.close());
    await plain.request({ op: 'subscribe', channel: 'other' });
    assert.deepEqual(plain.frames.map((f) => f.op), ['ack'], 'only the ack: no welcome');
  });
});

test('SERVE_CLIENT=false: GET / and /hubcast.js answer 404, the other routes are unchanged', { timeout: 30_000 }, async (t) => {
  const off = await gateway({ SERVE_CLIENT: 'false' });
  t.after(() => off.gateway.shutdown());
  for (const path of ['/', '/hubcast.js']) {
    const res = await raw(off.http, 'GET', path);
    assert.equal(res.status, 404, path);
    assert.equal(JSON.parse(res.body.toString()).code, 'not_found');
  }
  assert.equal((await raw(off.http, 'GET', '/healthz')).status, 200);
});

test("the Dockerfile's build stage writes the page and the bundle into what the runtime stage copies", { timeout: 60_000 }, (t) => {
  const dockerfile = readFileSync(join(ROOT, 'services/gateway/Dockerfile'), 'utf8');
  const [build, ...later] = dockerfile.split(/^FROM /m).slice(1);
  assert.match(build!, /^COPY clients\/js \.\/clients\/js$/m, 'the SDK and the demo page are in the build stage');
  assert.match(build!, /^RUN node clients\/js\/demo\/build\.mjs$/m);
  assert.match(later.at(-1)!, /^COPY --from=build \/app\/dist\/services\/gateway \.\/dist\/services\/gateway$/m);
  // The same step in a directory holding only what the build stage copies (and the dependencies).
  const context = mkdtempSync(join(tmpdir(), 'hubcast-static-context-'));
  t.after(() => rmSync(context, { recursive: true, force: true }));
  cpSync(join(ROOT, 'clients/js'), join(context, 'clients/js'), { recursive: true, filter: (src) => !src.includes('/clients/js/dist') });
  symlinkSync(join(ROOT, 'node_modules'), join(context, 'node_modules'));
  const r = spawnSync(process.execPath, ['clients/js/demo/build.mjs'], { cwd: context, encoding: 'utf8', timeout: 50_000 });
  assert.equal(r.status, 0, `the static build failed:\n${r.stdout}${r.stderr}`);
  const built = join(context, 'dist/services/gateway/static');
  assert.deepEqual(readFileSync(join(built, 'index.html')), PAGE_SOURCE);
  assert.match(readFileSync(join(built, 'hubcast.js'), 'utf8'), /export\s*\{[^}]*\bHubcastClient\b/);
});

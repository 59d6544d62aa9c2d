// The demo page and bundle routes (static.ts) and the welcome frame (welcome.ts), without sockets:
// files read once from a directory, strong content-hash ETags, If-None-Match, HEAD, a file not
// built; which gateway a welcome names.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import {
  STATIC_ROUTES,
  answerStatic,
  etagOf,
  loadClientFiles,
  loadStatic,
  notModified,
} from '../../services/gateway/src/static.js';
import { encodeWelcome, gatewayAddress, wantsWelcome } from '../../services/gateway/src/welcome.js';

function staticDir(t: { after(fn: () => void): void }, files: Record<string, string>): URL {
  const dir = mkdtempSync(join(tmpdir(), 'hubcast-static-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return pathToFileURL(`${dir}/`);
}

describe('static files', () => {
  test('two fixed routes: / is the page, /hubcast.js the bundle, each with its type and no-cache', () => {
    assert.deepEqual(
      STATIC_ROUTES.map((r) => [r.path, r.file, r.contentType, r.cacheControl]),
      [
        ['/', 'index.html', 'text/html; charset=utf-8', 'no-cache'],
        ['/hubcast.js', 'hubcast.js', 'text/javascript; charset=utf-8', 'no-cache'],
      ],
    );
  });

  test('loadStatic reads each file once: later changes on disk are not served; other paths are not files', (t) => {
    const dir = staticDir(t, { 'index.html': '<p>page</p>', 'hubcast.js': 'export class HubcastClient {}', 'secret.txt': 'no' });
    const { files, missing } = loadStatic(dir);
    assert.deepEqual(missing, []);
    assert.equal(files.get('/')!.body.toString(), '<p>page</p>');
    assert.equal(files.get('/hubcast.js')!.body.toString(), 'export class HubcastClient {}');
    writeFileSync(new URL('index.html', dir), 'changed');
    assert.equal(files.get('/')!.body.toString(), '<p>page</p>', 'read at start, served from memory');
    for (const path of ['/index.html', '/secret.txt', '/hubcast.js.map', '/../index.html', '/%2e%2e/index.html', '//', '']) {
      assert.equal(files.get(path), undefined, path);
    }
  });

  test('a file that is not built is reported missing and its route is absent', (t) => {
    const dir = staticDir(t, { 'index.html': 'page' });
    const { files, missing } = loadStatic(dir);
    assert.deepEqual(missing, ['hubcast.js']);
    assert.ok(files.get('/'));
    assert.equal(files.get('/hubcast.js'), undefined);
  });

  test('SERVE_CLIENT: off serves nothing even when built; on with a file missing logs one warning naming it', (t) => {
    const dir = staticDir(t, { 'index.html': 'page' });
    const lines: { level: number; missing?: string[] }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    assert.equal(loadClientFiles(false, log, dir).get('/'), undefined);
    assert.equal(lines.length, 0);
    const files = loadClientFiles(true, log, dir);
    assert.ok(files.get('/'));
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 40, 'warn');
    assert.deepEqual(lines[0]!.missing, ['hubcast.js']);
  });

  test('the ETag is strong and a hash of the bytes: equal content, equal tag; one byte changed, another', () => {
    const a = etagOf(Buffer.from('same'));
    assert.match(a, /^"[A-Za-z0-9_-]{43}"$/);
    assert.equal(etagOf(Buffer.from('same')), a);
    assert.notEqual(etagOf(Buffer.from('samf')), a);
  });

  test('If-None-Match: the tag, a list holding it, its weak form or * match; others and absence do not', () => {
    const tag = '"abc"';
    assert.equal(notModified(undefined, tag), false);
    assert.ok(notModified('"abc"', tag));
    assert.ok(notModified('"x", "abc"', tag));
    assert.ok(notModified('W/"abc"', tag), 'If-None-Match compares weakly');
    assert.ok(notModified('*', tag));
    assert.equal(notModified('"abcd"', tag), false);
    assert.equal(notModified('abc', tag), false, 'an unquoted tag is not the tag');
    assert.equal(notModified('', tag), false);
  });

  test('answerStatic: 200 with body and headers; HEAD the same headers and no body; a match is 304 without body or type', (t) => {
    const dir = staticDir(t, { 'index.html': '<h1>hi</h1>', 'hubcast.js': 'x' });
    const page = loadStatic(dir).files.get('/')!;
    const full = answerStatic(page, 'GET', undefined);
    assert.equal(full.status, 200);
    assert.equal(full.body, page.body);
    assert.deepEqual(full.headers, {
      etag: page.etag,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'content-type': 'text/html; charset=utf-8',
      'content-length': 11,
    });
    const head = answerStatic(page, 'HEAD', undefined);
    assert.deepEqual(head, { ...full, body: null });
    const cached = answerStatic(page, 'GET', page.etag);
    assert.equal(cached.status, 304);
    assert.equal(cached.body, null);
    assert.deepEqual(cached.headers, { etag: page.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    assert.equal(answerStatic(page, 'GET', '"stale"').status, 200);
  });
});

describe('welcome frame', () => {
  test('asked for with ?welcome (any value), alone or among other parameters; not otherwise', () => {
    for (const url of ['/ws?welcome', '/ws?welcome=1', '/ws?channels=a&welcome=&token=x', '/ws?token=x&welcome']) {
      assert.ok(wantsWelcome(url), url);
    }
    for (const url of [undefined, '/ws', '/ws?', '/ws?channels=welcome', '/ws?welcomed=1', '/welcome']) {
      assert.equal(wantsWelcome(url), false, String(url));
    }
  });

  test('names the address and port the connection reached, IPv4-mapped addresses unwrapped, IPv6 bracketed', () => {
    assert.equal(gatewayAddress('127.0.0.3', 8080), '127.0.0.3:8080');
    assert.equal(gatewayAddress('::ffff:10.0.0.5', 8080), '10.0.0.5:8080');
    assert.equal(gatewayAddress('::1', 8080), '[::1]:8080');
    assert.equal(gatewayAddress(undefined, undefined), 'unknown:0', 'a socket already gone');
  });

  test('one JSON text frame: op, gateway, host', () => {
    assert.deepEqual(JSON.parse(encodeWelcome('127.0.0.2', 4000, 'gw-7f').toString('utf8')), {
      op: 'welcome',
      gateway: '127.0.0.2:4000',
      host: 'gw-7f',
    });
  });
});

// The demo page (GET /) and the SDK's browser bundle (GET /hubcast.js): two fixed routes, each one
// file that the build copies into this package's static/ directory and the gateway reads once at
// start. No path from a request ever reaches the file system, so there is nothing to traverse.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

export interface StaticRoute {
  readonly path: string;
  /** The file's name in the static directory. */
  readonly file: string;
  readonly contentType: string;
  readonly cacheControl: string;
}

// Both revalidate on every use (no-cache + ETag, a 304 costs one round trip): the page and the
// bundle must come from the same build, or a cached old bundle would meet a new page after a deploy.
export const STATIC_ROUTES: readonly StaticRoute[] = [
  { path: '/', file: 'index.html', contentType: 'text/html; charset=utf-8', cacheControl: 'no-cache' },
  { path: '/hubcast.js', file: 'hubcast.js', contentType: 'text/javascript; charset=utf-8', cacheControl: 'no-cache' },
];

/** Where the build puts the files: dist/services/gateway/static/, next to this module's src/. */
export const STATIC_DIR = new URL('../static/', import.meta.url);

export interface StaticFile {
  readonly route: StaticRoute;
  readonly body: Buffer;
  /** Strong: a hash of the bytes. */
  readonly etag: string;
}

export interface StaticFiles {
  /** The file served at this path, if any. */
  get(path: string): StaticFile | undefined;
}

export interface LoadedStatic {
  readonly files: StaticFiles;
  /** Files of STATIC_ROUTES that could not be read (not built); their routes answer 404. */
  readonly missing: readonly string[];
}

export const NO_STATIC: StaticFiles = { get: () => undefined };

export function etagOf(body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url')}"`;
}

/** Reads every route's file from dir, once. */
export function loadStatic(dir: URL = STATIC_DIR, routes: readonly StaticRoute[] = STATIC_ROUTES): LoadedStatic {
  const byPath = new Map<string, StaticFile>();
  const missing: string[] = [];
  for (const route of routes) {
    let body: Buffer;
    try {
      body = readFileSync(new URL(route.file, dir));
    } catch {
      missing.push(route.file);
      continue;
    }
    byPath.set(route.path, { route, body, etag: etagOf(body) });
  }
  return { files: { get: (path) => byPath.get(path) }, missing };
}

/** SERVE_CLIENT: the files when on (a warning names any not built), none when off. */
export function loadClientFiles(serve: boolean, log: Logger, dir: URL = STATIC_DIR): StaticFiles {
  if (!serve) return NO_STATIC;
  const { files, missing } = loadStatic(dir);
  if (missing.length > 0) {
    log.warn({ missing, dir: dir.pathname }, 'demo page or SDK bundle not built (npm run build); their routes answer 404');
  }
  return files;
}

/**
 * If-None-Match against one strong ETag (RFC 9110 13.1.2: a list of tags or `*`, compared weakly,
 * so `W/"x"` matches `"x"`).
 */
export function notModified(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t === etag || t === `W/${etag}`;
  });
}

export interface StaticAnswer {
  readonly status: 200 | 304;
  readonly headers: Readonly<Record<string, string | number>>;
  /** null for HEAD and 304. */
  readonly body: Buffer | null;
}

/** The answer to GET or HEAD of a file; pure. */
export function answerStatic(file: StaticFile, method: string, ifNoneMatch: string | undefined): StaticAnswer {
  const headers = {
    etag: file.etag,
    'cache-control': file.route.cacheControl,
    'x-content-type-options': 'nosniff',
  };
  if (notModified(ifNoneMatch, file.etag)) return { status: 304, headers, body: null };
  const full = { ...headers, 'content-type': file.route.contentType, 'content-length': file.body.length };
  return { status: 200, headers: full, body: method === 'HEAD' ? null : file.body };
}

export function serveStatic(file: StaticFile, req: IncomingMessage, res: ServerResponse): void {
  const { status, headers, body } = answerStatic(file, req.method ?? 'GET', req.headers['if-none-match']);
  res.writeHead(status, headers);
  res.end(body ?? undefined);
}

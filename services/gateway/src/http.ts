// Plain HTTP routes: POST /publish and GET /history (and their CORS preflights), GET /metrics,
// /healthz, /readyz.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Auth, type Grant, isAuthFailure } from './auth.js';
import type { Bus } from './bus/bus.js';
import { HistoryReadPurpose, Refusal } from './codes.js';
import { type AllowedOrigins, corsHeaders, originAllowed, preflightHeaders } from './origin.js';
import { type HistoryQuery, encodeHistory, isProtocolError, parseHistoryQuery, parsePublishBody } from './protocol.js';
import { type PublishPipeline, type PublishRefused, isPending } from './publish.js';
import { type Headers, sendJson, sendRefusal } from './refuse.js';
import { type StaticFiles, serveStatic } from './static.js';

export { sendJson } from './refuse.js';

export interface HttpContext {
  readonly bus: Bus;
  readonly registry: Registry;
  readonly log: Logger;
  readonly maxMessageBytes: number;
  readonly auth: Auth;
  readonly allowedOrigins: AllowedOrigins;
  /** The HTTP source's publish pipeline (publish.ts). */
  readonly httpPublishes: PublishPipeline;
  /** GET / and /hubcast.js (static.ts). */
  readonly staticFiles: StaticFiles;
  /** HISTORY_SIZE: the most messages GET /history answers (and its default limit). */
  readonly historySize: number;
  isDraining(): boolean;
}

export function createHttpHandler(ctx: HttpContext): (req: IncomingMessage, res: ServerResponse) => void {
  const route = createRouter(ctx);
  return (req, res) => {
    try {
      route(req, res);
    } catch (err) {
      // A bug, not bad input: answer 500 and keep the process serving.
      ctx.log.error({ err, url: req.url }, 'http handler failed');
      if (!res.headersSent) sendRefusal(res, Refusal.InternalError);
      else res.destroy();
    }
  };
}

function createRouter(ctx: HttpContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const method = req.method ?? 'GET';
    const read = method === 'GET' || method === 'HEAD';
    const file = ctx.staticFiles.get(path);
    if (file !== undefined) return read ? serveStatic(file, req, res) : methodNotAllowed(res, 'GET, HEAD');
    switch (path) {
      case '/publish':
        if (method === 'OPTIONS') return preflight(ctx, req, res);
        if (method !== 'POST') return methodNotAllowed(res, 'POST');
        return publish(ctx, req, res);
      case '/history':
        if (method === 'OPTIONS') return historyPreflight(ctx, req, res);
        if (method !== 'GET') return methodNotAllowed(res, 'GET');
        return history(ctx, req, res);
      case '/healthz':
        if (!read) return methodNotAllowed(res, 'GET, HEAD');
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz':
        if (!read) return methodNotAllowed(res, 'GET, HEAD');
        return readyz(ctx, res);
      case '/metrics':
        if (!read) return methodNotAllowed(res, 'GET, HEAD');
        return metrics(ctx, res);
      case '/ws':
        if (!read) return methodNotAllowed(res, 'GET');
        return sendRefusal(res, Refusal.UpgradeRequired, undefined, { upgrade: 'websocket' });
      default:
        return sendRefusal(res, Refusal.NotFound, `no route ${method} ${path}`);
    }
  };
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendRefusal(res, Refusal.MethodNotAllowed, `allowed: ${allow}`, { allow });
}

function readyz(ctx: HttpContext, res: ServerResponse): void {
  const draining = ctx.isDraining();
  const bus = ctx.bus.ready;
  const ready = bus && !draining;
  sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', bus: ctx.bus.kind, busReady: bus, draining });
}

function metrics(ctx: HttpContext, res: ServerResponse): void {
  ctx.registry.metrics().then(
    (text) => {
      res.writeHead(200, { 'content-type': ctx.registry.contentType });
      res.end(text);
    },
    (err: unknown) => {
      ctx.log.error({ err }, 'metrics collection failed');
      sendRefusal(res, Refusal.InternalError, 'metrics collection failed');
    },
  );
}

const allowedOrigin = (ctx: HttpContext, req: IncomingMessage): boolean =>
  originAllowed(ctx.allowedOrigins, req.headers.origin, req.headers.host);

/**
 * OPTIONS /publish. A browser preflights a JSON or bearer POST; an allowed origin gets what it
 * needs, any other a 403 (counted as a refused publish: the browser will not send it).
 * Without Origin it is no preflight: just the methods.
 */
function preflight(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): void {
  const { origin } = req.headers;
  if (!allowedOrigin(ctx, req)) {
    const { refusal } = ctx.httpPublishes.refuse(Refusal.OriginForbidden);
    sendRefusal(res, refusal);
    return;
  }
  res.writeHead(204, origin === undefined ? { allow: 'OPTIONS, POST' } : preflightHeaders(origin));
  res.end();
}

/** Origin, then credentials, so a foreign page or an unauthenticated caller cannot make the gateway read or parse a body. */
function publish(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): void {
  const pipeline = ctx.httpPublishes;
  if (!allowedOrigin(ctx, req)) {
    answer(res, pipeline.refuse(Refusal.OriginForbidden), {});
    req.resume();
    return;
  }
  const cors = corsHeaders(req.headers.origin, req.headers.host);
  ctx.auth.publisher(req).then(
    (result) => {
      if (isAuthFailure(result)) {
        answer(res, pipeline.refuse(Refusal.Unauthorized, result.message), cors);
        req.resume();
        return;
      }
      readAndPublish(ctx, req, res, result, cors);
    },
    (err: unknown) => {
      ctx.log.error({ err }, 'publish auth failed');
      if (!res.headersSent) sendRefusal(res, Refusal.InternalError, undefined, cors);
    },
  );
}

/** OPTIONS /history: as for /publish, a GET with a bearer token needs a preflight from another origin. */
function historyPreflight(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): void {
  const { origin } = req.headers;
  if (!allowedOrigin(ctx, req)) return sendRefusal(res, Refusal.OriginForbidden);
  res.writeHead(204, origin === undefined ? { allow: 'GET, OPTIONS' } : preflightHeaders(origin, 'GET'));
  res.end();
}

/**
 * GET /history. The origin rule applies as on /publish, although the route only reads: the
 * answer holds channel data, and a foreign page must not get a visitor's browser to fetch it.
 * Then history on, credentials, parameters, and the subscribe permission for the channel.
 */
function history(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): void {
  if (!allowedOrigin(ctx, req)) return sendRefusal(res, Refusal.OriginForbidden);
  const cors = corsHeaders(req.headers.origin, req.headers.host);
  const reads = ctx.bus.history;
  if (reads === null) return sendRefusal(res, Refusal.HistoryDisabled, undefined, cors);
  ctx.auth.historyReader(req).then(
    (grant) => {
      if (isAuthFailure(grant)) return sendRefusal(res, Refusal.Unauthorized, grant.message, cors);
      const query = parseHistoryQuery(new URL(req.url ?? '/', 'http://gateway').searchParams, ctx.historySize);
      if (isProtocolError(query)) {
        return sendRefusal(res, query.error === Refusal.InvalidChannel.code ? Refusal.InvalidChannel : Refusal.InvalidMessage, query.message, cors);
      }
      if (!grant.subscribe.allows(query.channel)) return sendRefusal(res, Refusal.SubscribeForbidden, undefined, cors);
      return readHistory(ctx, res, query, cors);
    },
    (err: unknown) => {
      ctx.log.error({ err }, 'history auth failed');
      if (!res.headersSent) sendRefusal(res, Refusal.InternalError, undefined, cors);
    },
  );
}

function readHistory(ctx: HttpContext, res: ServerResponse, query: HistoryQuery, cors: Headers): void {
  ctx.bus.history!.since(query.channel, query.since, query.epoch, query.limit, HistoryReadPurpose.Http).then(
    (read) => {
      const body = encodeHistory(query.channel, read);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-store', ...cors });
      res.end(body);
    },
    (err: Error) => sendRefusal(res, Refusal.BusUnavailable, `history could not be read: ${err.message}`, cors),
  );
}

function answer(res: ServerResponse, { refusal, detail }: PublishRefused, headers: Headers): void {
  sendRefusal(res, refusal, detail, headers);
}

function readAndPublish(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, grant: Grant, cors: Headers): void {
  const pipeline = ctx.httpPublishes;
  const tooLarge = `body exceeds MAX_MESSAGE_BYTES (${ctx.maxMessageBytes})`;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > ctx.maxMessageBytes) {
    answer(res, pipeline.refuse(Refusal.MessageTooLarge, tooLarge), cors);
    req.resume();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let aborted = false;
  req.on('data', (chunk: Buffer) => {
    if (aborted) return;
    size += chunk.length;
    if (size > ctx.maxMessageBytes) {
      aborted = true;
      answer(res, pipeline.refuse(Refusal.MessageTooLarge, tooLarge), cors);
      return;
    }
    chunks.push(chunk);
  });
  req.on('error', () => {
    aborted = true;
  });
  req.on('end', () => {
    if (aborted) return;
    const result = pipeline.publishAwaited(grant, parsePublishBody(Buffer.concat(chunks, size)));
    if (!isPending(result)) return answer(res, result, cors);
    result.then((refused) => {
      if (refused === null) sendJson(res, 202, { status: 'accepted' }, cors);
      else answer(res, refused, cors);
    });
  });
}

// Plain HTTP routes: POST /publish, GET /metrics, /healthz, /readyz.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Auth, type Grant, isAuthFailure } from './auth.js';
import type { Bus } from './bus/bus.js';
import { ErrorCode, PublishRejectReason } from './codes.js';
import { isProtocolError, parsePublishBody, tryEncodeMessage } from './protocol.js';
import { type StaticFiles, serveStatic } from './static.js';
import type { Stats } from './stats.js';

export interface HttpContext {
  readonly bus: Bus;
  readonly stats: Stats;
  readonly registry: Registry;
  readonly log: Logger;
  readonly maxMessageBytes: number;
  readonly auth: Auth;
  /** GET / and /hubcast.js (static.ts). */
  readonly staticFiles: StaticFiles;
  isDraining(): boolean;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string, headers?: Record<string, string>): void {
  sendJson(res, status, { code, message }, headers);
}

export function createHttpHandler(ctx: HttpContext): (req: IncomingMessage, res: ServerResponse) => void {
  const route = createRouter(ctx);
  return (req, res) => {
    try {
      route(req, res);
    } catch (err) {
      // A bug, not bad input: answer 500 and keep the process serving.
      ctx.log.error({ err: (err as Error).message, url: req.url }, 'http handler failed');
      if (!res.headersSent) sendError(res, 500, ErrorCode.InternalError, 'internal error');
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
        if (method !== 'POST') return methodNotAllowed(res, 'POST');
        return publish(ctx, req, res);
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
        return sendJson(res, 426, { code: ErrorCode.InvalidMessage, message: 'GET /ws must be a WebSocket upgrade' }, {
          upgrade: 'websocket',
        });
      default:
        return sendError(res, 404, ErrorCode.NotFound, `no route ${method} ${path}`);
    }
  };
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendError(res, 405, ErrorCode.MethodNotAllowed, `allowed: ${allow}`, { allow });
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
    (err: Error) => {
      ctx.log.error({ err: err.message }, 'metrics collection failed');
      sendError(res, 500, ErrorCode.InternalError, 'metrics collection failed');
    },
  );
}

type Reject = (status: number, code: ErrorCode, reason: PublishRejectReason, message: string) => void;

/** Credentials first, so an unauthenticated caller cannot make the gateway read or parse a body. */
function publish(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): void {
  const { stats } = ctx;
  const reject: Reject = (status, code, reason, message) => {
    stats.publishesRejected.http[reason]++;
    const headers: Record<string, string> = {};
    if (status === 413 || status === 401) headers.connection = 'close';
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    sendError(res, status, code, message, headers);
  };
  ctx.auth.publisher(req).then(
    (result) => {
      if (isAuthFailure(result)) {
        reject(401, ErrorCode.Unauthorized, PublishRejectReason.Unauthorized, result.message);
        req.resume();
        return;
      }
      readAndPublish(ctx, req, res, result, reject);
    },
    (err: Error) => {
      ctx.log.error({ err: err.message }, 'publish auth failed');
      if (!res.headersSent) sendError(res, 500, ErrorCode.InternalError, 'internal error');
    },
  );
}

function readAndPublish(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, grant: Grant, reject: Reject): void {
  const { stats } = ctx;
  const tooLarge = `body exceeds MAX_MESSAGE_BYTES (${ctx.maxMessageBytes})`;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > ctx.maxMessageBytes) {
    reject(413, ErrorCode.MessageTooLarge, PublishRejectReason.TooLarge, tooLarge);
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
      reject(413, ErrorCode.MessageTooLarge, PublishRejectReason.TooLarge, tooLarge);
      return;
    }
    chunks.push(chunk);
  });
  req.on('error', () => {
    aborted = true;
  });
  req.on('end', () => {
    if (aborted) return;
    const body = parsePublishBody(Buffer.concat(chunks, size).toString('utf8'));
    if (isProtocolError(body)) {
      reject(400, body.error, PublishRejectReason.Invalid, body.message);
      return;
    }
    if (!grant.publish.allows(body.channel)) {
      reject(403, ErrorCode.Forbidden, PublishRejectReason.Forbidden, 'the token does not allow publishing to this channel');
      return;
    }
    const payload = tryEncodeMessage(body.channel, body.data);
    if (isProtocolError(payload)) {
      reject(400, payload.error, PublishRejectReason.Invalid, payload.message);
      return;
    }
    if (payload.length > ctx.maxMessageBytes) {
      reject(413, ErrorCode.MessageTooLarge, PublishRejectReason.TooLarge, 'encoded message exceeds MAX_MESSAGE_BYTES');
      return;
    }
    ctx.bus.publish(body.channel, payload).then(
      () => {
        stats.publishesAccepted.http++;
        sendJson(res, 202, { status: 'accepted' });
      },
      (err: Error) => {
        reject(503, ErrorCode.BusUnavailable, PublishRejectReason.BusUnavailable, err.message);
      },
    );
  });
}

// GET /ws upgrades. Channels named in ?channels= are live on the bus before the 101 is sent,
// so a client that sees the socket open will receive anything published after that moment.
// Refusals come before any WebSocket state exists: connection limit, origin, token, channels.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type PerMessageDeflateOptions, WebSocketServer } from 'ws';
import { type Auth, type Grant, isAuthFailure, originAllowed } from './auth.js';
import { Client, type ClientLimits } from './client.js';
import { ErrorCode, UpgradeRejectReason } from './codes.js';
import { type ConnectionContext, attachConnection } from './connection.js';
import { isProtocolError, parseChannelsQuery } from './protocol.js';
import { encodeWelcome, wantsWelcome } from './welcome.js';

/** Longest wait for ?channels to go live before opening anyway (the bus may have just dropped). */
const SUBSCRIBE_WAIT_MS = 5000;

export interface UpgradeContext extends ConnectionContext {
  readonly limits: ClientLimits;
  readonly maxChannelsPerClient: number;
  readonly maxConnections: number;
  readonly handshakeTimeoutMs: number;
  readonly permessageDeflate: boolean;
  readonly allowedOrigins: readonly string[] | undefined;
  readonly auth: Auth;
  isDraining(): boolean;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  503: 'Service Unavailable',
};

function refuse(socket: Socket, status: number, code: ErrorCode, message: string): void {
  const body = JSON.stringify({ code, message });
  const challenge = status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '';
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `${challenge}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroySoon();
}

/**
 * Compression only when asked for, and bounded: no context kept between messages (no 32 KiB
 * windows per idle client), small zlib memory, few zlib jobs at once, and ws counts the inflated
 * size against maxPayload (1009), so a small compressed bomb cannot expand past MAX_MESSAGE_BYTES.
 * Outbound frames are framed once per gateway and sent uncompressed (RFC 7692 allows that).
 */
function deflateOptions(enabled: boolean): PerMessageDeflateOptions | false {
  if (!enabled) return false;
  return {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    concurrencyLimit: 4,
    threshold: 1024,
    zlibDeflateOptions: { memLevel: 4 },
    zlibInflateOptions: { chunkSize: 16 * 1024 },
  };
}

export interface UpgradeHandler {
  handle(req: IncomingMessage, socket: Socket, head: Buffer): void;
  /** Stops waiting for ?channels at once; the waiting upgrades then see the drain and get 503. */
  abortPending(): void;
}

export function createUpgradeHandler(ctx: UpgradeContext): UpgradeHandler {
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: ctx.maxMessageBytes,
    perMessageDeflate: deflateOptions(ctx.permessageDeflate),
    // Pongs go through the client's bounded queue instead (connection.ts).
    autoPong: false,
  });
  let nextId = 1;
  /** Upgrades past the connection limit check and not yet open or refused. */
  let inFlight = 0;
  /** Ends the wait of each upgrade still waiting for its ?channels to go live. */
  const pending = new Set<() => void>();

  function waitLive(channels: readonly string[]): Promise<void> {
    if (channels.length === 0 || !ctx.bus.ready) return Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
      timer = setTimeout(resolve, SUBSCRIBE_WAIT_MS);
    });
    pending.add(stop);
    return Promise.race([Promise.all(channels.map((c) => ctx.hub.whenLive(c))).then(() => undefined), stopped]).finally(
      () => {
        clearTimeout(timer);
        pending.delete(stop);
      },
    );
  }

  const handle = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    const onError = (err: Error): void => ctx.log.debug({ err: err.message }, 'socket error during upgrade');
    socket.on('error', onError);
    const { stats } = ctx;
    const reject = (reason: UpgradeRejectReason, status: number, code: ErrorCode, message: string): void => {
      stats.upgradesRejected[reason]++;
      refuse(socket, status, code, message);
    };
    if (ctx.isDraining()) {
      reject(UpgradeRejectReason.Draining, 503, ErrorCode.Draining, 'gateway is shutting down; connect to another');
      return;
    }
    if (ctx.hub.clientCount + inFlight >= ctx.maxConnections) {
      reject(UpgradeRejectReason.TooManyConnections, 503, ErrorCode.TooManyConnections, 'gateway is full (MAX_CONNECTIONS)');
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://gateway');
    } catch {
      reject(UpgradeRejectReason.Invalid, 400, ErrorCode.InvalidMessage, 'unparseable request URL');
      return;
    }
    if (url.pathname !== '/ws') {
      reject(UpgradeRejectReason.Invalid, 404, ErrorCode.NotFound, `no WebSocket endpoint at ${url.pathname}`);
      return;
    }
    if (!originAllowed(ctx.allowedOrigins, req)) {
      reject(UpgradeRejectReason.Forbidden, 403, ErrorCode.Forbidden, 'origin not allowed (ALLOWED_ORIGINS)');
      return;
    }
    const channels = parseChannelsQuery(url.searchParams.get('channels'));
    if (isProtocolError(channels)) {
      reject(UpgradeRejectReason.Invalid, 400, channels.error, channels.message);
      return;
    }
    if (channels.length > ctx.maxChannelsPerClient) {
      reject(UpgradeRejectReason.Invalid, 400, ErrorCode.TooManyChannels, 'more channels than MAX_CHANNELS_PER_CLIENT');
      return;
    }

    inFlight++;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      inFlight--;
      clearTimeout(deadline);
      // Its closure holds this upgrade's request; left on the socket, it would stay for the
      // connection's whole life (about 3 KB per idle connection, measured with the bench's (c)).
      socket.off('close', finish);
    };
    // Against slowloris past the headers: an upgrade that has not opened in time is cut off.
    const deadline = setTimeout(() => {
      if (done) return;
      finish();
      stats.upgradesRejected[UpgradeRejectReason.HandshakeTimeout]++;
      socket.destroy();
    }, ctx.handshakeTimeoutMs);
    socket.once('close', finish);

    ctx.auth
      .connect(req, url)
      .then((result) => {
        if (done) return;
        if (isAuthFailure(result)) {
          finish();
          reject(UpgradeRejectReason.Unauthorized, 401, ErrorCode.Unauthorized, result.message);
          return;
        }
        const denied = channels.find((c) => !result.subscribe.allows(c));
        if (denied !== undefined) {
          finish();
          reject(UpgradeRejectReason.Forbidden, 403, ErrorCode.Forbidden, `the token does not allow subscribing to ${denied}`);
          return;
        }
        open(req, socket, head, channels, result, onError, finish);
      })
      .catch((err: Error) => {
        finish();
        ctx.log.error({ err: err.message }, 'upgrade failed');
        socket.destroy();
      });
  };

  const open = (
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    channels: string[],
    grant: Grant,
    onError: (err: Error) => void,
    finish: () => void,
  ): void => {
    ctx.hub.pin(channels);
    waitLive(channels).then(() => {
      if (socket.destroyed || ctx.isDraining()) {
        ctx.hub.unpin(channels);
        finish();
        if (!socket.destroyed) {
          ctx.stats.upgradesRejected[UpgradeRejectReason.Draining]++;
          refuse(socket, 503, ErrorCode.Draining, 'gateway is shutting down; connect to another');
        }
        return;
      }
      try {
        wss.handleUpgrade(req, socket, head, (ws) => {
          socket.off('error', onError);
          const client = new Client(nextId++, ws, socket, ctx.limits, ctx.stats, ctx.hub);
          ctx.hub.register(client);
          if (wantsWelcome(req.url)) client.reply(encodeWelcome(socket.localAddress, socket.localPort)); // first frame
          for (const channel of channels) ctx.hub.subscribe(client, channel);
          attachConnection(ctx, client, grant);
          ctx.log.debug({ client: client.id, channels: channels.length }, 'client connected');
        });
      } catch (err) {
        // A bug, not bad input: drop this socket, keep the process serving.
        ctx.log.error({ err: (err as Error).message }, 'upgrade failed');
        socket.destroy();
      } finally {
        // Without verifyClient, ws completes synchronously, so the client (if any) holds the
        // channels by now; no callback means ws refused the handshake itself and answered 400.
        ctx.hub.unpin(channels);
        finish();
      }
    }).catch((err: Error) => {
      finish();
      ctx.log.error({ err: err.message }, 'upgrade failed');
      socket.destroy();
    });
  };

  return {
    handle,
    abortPending: () => {
      for (const stop of [...pending]) stop();
    },
  };
}

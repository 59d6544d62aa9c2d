// GET /ws upgrades. Channels named in ?channels= are live on the bus before the 101 is sent,
// so a client that sees the socket open will receive anything published after that moment.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { Client, type ClientLimits } from './client.js';
import { ErrorCode } from './codes.js';
import { type ConnectionContext, attachConnection } from './connection.js';
import { isProtocolError, parseChannelsQuery } from './protocol.js';

/** Longest wait for ?channels to go live before opening anyway (the bus may have just dropped). */
const SUBSCRIBE_WAIT_MS = 5000;

export interface UpgradeContext extends ConnectionContext {
  readonly limits: ClientLimits;
  readonly maxChannelsPerClient: number;
  isDraining(): boolean;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 503: 'Service Unavailable' };

function refuse(socket: Socket, status: number, code: ErrorCode, message: string): void {
  const body = JSON.stringify({ code, message });
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroySoon();
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
    perMessageDeflate: false,
    // Pongs go through the client's bounded queue instead (connection.ts).
    autoPong: false,
  });
  let nextId = 1;
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
    if (ctx.isDraining()) {
      refuse(socket, 503, ErrorCode.Draining, 'gateway is shutting down; connect to another');
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://gateway');
    } catch {
      refuse(socket, 400, ErrorCode.InvalidMessage, 'unparseable request URL');
      return;
    }
    if (url.pathname !== '/ws') {
      refuse(socket, 404, ErrorCode.NotFound, `no WebSocket endpoint at ${url.pathname}`);
      return;
    }
    const channels = parseChannelsQuery(url.searchParams.get('channels'));
    if (isProtocolError(channels)) {
      refuse(socket, 400, channels.error, channels.message);
      return;
    }
    if (channels.length > ctx.maxChannelsPerClient) {
      refuse(socket, 400, ErrorCode.TooManyChannels, 'more channels than MAX_CHANNELS_PER_CLIENT');
      return;
    }
    ctx.hub.pin(channels);
    waitLive(channels).then(() => {
      if (socket.destroyed || ctx.isDraining()) {
        ctx.hub.unpin(channels);
        if (!socket.destroyed) refuse(socket, 503, ErrorCode.Draining, 'gateway is shutting down; connect to another');
        return;
      }
      try {
        wss.handleUpgrade(req, socket, head, (ws) => {
          socket.off('error', onError);
          const client = new Client(nextId++, ws, socket, ctx.limits, ctx.stats, ctx.hub);
          ctx.hub.register(client);
          for (const channel of channels) ctx.hub.subscribe(client, channel);
          attachConnection(ctx, client);
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
      }
    }).catch((err: Error) => {
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

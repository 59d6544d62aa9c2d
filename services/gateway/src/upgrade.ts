// GET /ws upgrades. Channels named in ?channels= are live on the bus before the 101 is sent,
// so a client that sees the socket open will receive anything published after that moment.
// Refusals come before any WebSocket state exists; the rules are the pure checks in
// upgrade-check.ts, run before and after the (async) token verification. This file is the shell.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type PerMessageDeflateOptions, WebSocketServer } from 'ws';
import type { Auth, Grant } from './auth.js';
import { Client, type ClientLimits } from './client.js';
import { Refusal, type Refused, UpgradeRejectReason } from './codes.js';
import { type ConnectionContext, attachConnection } from './connection.js';
import { PendingUpgrades, type PendingUpgrade } from './pending-upgrade.js';
import { refuse } from './refuse.js';
import { type Asked, type UpgradeRules, checkGrant, checkRequest, isRefused } from './upgrade-check.js';
import { encodeWelcome, wantsWelcome } from './welcome.js';

/** Longest wait for ?channels to go live before opening anyway (the bus may have just dropped). */
const SUBSCRIBE_WAIT_MS = 5000;

export interface UpgradeContext extends ConnectionContext, UpgradeRules {
  readonly limits: ClientLimits;
  readonly handshakeTimeoutMs: number;
  readonly permessageDeflate: boolean;
  readonly auth: Auth;
  isDraining(): boolean;
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
  const { stats, hub } = ctx;
  const pending = new PendingUpgrades(ctx.handshakeTimeoutMs, () => stats.upgradesRejected[UpgradeRejectReason.HandshakeTimeout]++);
  let nextId = 1;

  /** The one way an upgrade is refused: counted, answered, socket closed. */
  const abortHandshake = (socket: Socket, { refusal, detail }: Refused<UpgradeRejectReason>): void => {
    stats.upgradesRejected[refusal.reason]++;
    refuse(socket, refusal, detail);
  };
  /** A bug, not bad input: drop this socket, keep the process serving. */
  const fail = (socket: Socket, upgrade: PendingUpgrade, err: unknown): void => {
    upgrade.finish();
    ctx.log.error({ err }, 'upgrade failed');
    socket.destroy();
  };

  const handle = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    const onError = (err: Error): void => ctx.log.debug({ err }, 'socket error during upgrade');
    socket.on('error', onError);
    const asked = checkRequest(req, ctx, { draining: ctx.isDraining(), connections: hub.clientCount + pending.inFlight });
    if (isRefused(asked)) return abortHandshake(socket, asked);

    const upgrade = pending.begin(socket);
    ctx.auth
      .connect(req, asked.url)
      .then((result) => {
        if (upgrade.settled) return;
        const grant = checkGrant(asked, result);
        if (isRefused(grant)) {
          upgrade.finish();
          return abortHandshake(socket, grant);
        }
        open(req, socket, head, asked, grant, upgrade, onError);
      })
      .catch((err: unknown) => fail(socket, upgrade, err));
  };

  const open = (
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    { channels }: Asked,
    grant: Grant,
    upgrade: PendingUpgrade,
    onError: (err: Error) => void,
  ): void => {
    hub.pin(channels);
    let pinned = true;
    const unpin = (): void => {
      if (pinned) hub.unpin(channels);
      pinned = false;
    };
    const live = channels.length === 0 || !ctx.bus.ready ? Promise.resolve() : Promise.all(channels.map((c) => hub.whenLive(c)));
    upgrade
      .waitFor(live, SUBSCRIBE_WAIT_MS)
      .then(() => {
        if (socket.destroyed || ctx.isDraining()) {
          unpin();
          upgrade.finish();
          if (!socket.destroyed) abortHandshake(socket, { refusal: Refusal.Draining });
          return;
        }
        try {
          wss.handleUpgrade(req, socket, head, (ws) => {
            socket.off('error', onError);
            const client = new Client(nextId++, ws, socket, ctx.limits, ctx.stats, hub);
            hub.register(client);
            if (wantsWelcome(req.url)) client.reply(encodeWelcome(socket.localAddress, socket.localPort)); // first frame
            for (const channel of channels) hub.subscribe(client, channel);
            attachConnection(ctx, client, grant);
            ctx.log.debug({ client: client.id, channels: channels.length }, 'client connected');
          });
        } catch (err) {
          fail(socket, upgrade, err);
        } finally {
          // Without verifyClient, ws completes synchronously, so the client (if any) holds the
          // channels by now; no callback means ws refused the handshake itself and answered 400.
          unpin();
          upgrade.finish();
        }
      })
      .catch((err: unknown) => {
        unpin();
        fail(socket, upgrade, err);
      });
  };

  return { handle, abortPending: () => pending.stopWaiting() };
}

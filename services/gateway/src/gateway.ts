// Wires one gateway together: bus, hub, metrics, HTTP and WebSocket, and its orderly shutdown.
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { Auth } from './auth.js';
import type { Bus } from './bus/bus.js';
import type { ObserveHistoryRead } from './bus/history-reads.js';
import { MemoryBus } from './bus/memory.js';
import { RedisBus } from './bus/redis.js';
import { ClusterBus } from './bus/redis-cluster.js';
import type { Client } from './client.js';
import { Disconnect, UpgradeRejectReason } from './codes.js';
import type { Config } from './config.js';
import { EXPIRY_RESOLUTION_MS } from './connection.js';
import { ExpirySchedule } from './expiry.js';
import { sliceCount } from './heartbeat.js';
import { createHttpHandler } from './http.js';
import { Hub } from './hub.js';
import { listen } from './listen.js';
import { createMetrics } from './metrics.js';
import { PublishPipeline } from './publish.js';
import { loadClientFiles } from './static.js';
import { Stats } from './stats.js';
import { createUpgradeHandler } from './upgrade.js';

export interface Gateway {
  readonly port: number;
  readonly hub: Hub;
  readonly bus: Bus;
  readonly stats: Stats;
  /** Drain (readyz 503, no new upgrades), wait DRAIN_MS, close clients with 1001, quit the bus. */
  shutdown(): Promise<void>;
}

function createBus(config: Config, stats: Stats, log: Logger, observeHistoryRead: ObserveHistoryRead): Bus {
  // HISTORY_SIZE=0: no history, no positions; the bus publishes as before history existed.
  const history = config.historySize === 0 ? null : { size: config.historySize, ttlS: config.historyTtlS };
  if (config.redisUrl === undefined && config.redisClusterNodes === undefined) {
    stats.busConnected.publisher = 1;
    stats.busConnected.subscriber = 1;
    // In-process delivery is synchronous and cannot lose a message: no envelope, no probe.
    stats.busProbeOk = 1;
    return new MemoryBus({ history, observeHistoryRead });
  }
  const redis = {
    prefix: config.redisPrefix,
    timeoutMs: config.redisTimeoutMs,
    probeIntervalMs: config.busProbeIntervalMs,
    probeTimeoutMs: config.busProbeTimeoutMs,
    history,
    observeHistoryRead,
  };
  const busLog = log.child({ component: 'bus' });
  // One Redis, or a Redis Cluster (config allows exactly one of the two).
  if (config.redisClusterNodes !== undefined) return new ClusterBus({ nodes: config.redisClusterNodes, ...redis }, stats, busLog);
  return new RedisBus({ url: config.redisUrl!, ...redis }, stats, busLog);
}

export async function startGateway(config: Config, log: Logger): Promise<Gateway> {
  const stats = new Stats();
  // The bus times its history reads into a histogram the metrics (made next, as they read the bus) own.
  const bus = createBus(config, stats, log, (purpose, seconds) => metrics.observeHistoryRead(purpose, seconds));
  let draining = false;
  const isDraining = (): boolean => draining;

  // Metrics read the hub only at scrape time, so they can be made first and feed the hub its histogram.
  const metrics = createMetrics({
    stats,
    busKind: bus.kind,
    isReady: () => bus.ready && !draining,
    channelCount: () => hub.channelCount,
    subscriptionCount: () => hub.subscriptionCount,
  });
  // The heartbeat ticks once per slice, each tick pinging one slice of the clients (heartbeat.ts).
  const heartbeatSlices = sliceCount(config.pingIntervalMs);
  const hub = new Hub(bus, stats, {
    maxChannelsPerClient: config.maxChannelsPerClient,
    log,
    observeFanout: metrics.observeFanout,
    heartbeatSlices,
  });
  // Every connection's token expiry in one schedule with one timer, not a timer per connection.
  const expiries = new ExpirySchedule<Client>(EXPIRY_RESOLUTION_MS, (client) => hub.disconnect(client, Disconnect.TokenExpired));

  bus.setListener({
    message: (channel, payload, position) => hub.broadcast(channel, payload, position),
    lost: (channel, position) => hub.lost(channel, position),
    readiness: (ready) => log.info({ ready }, ready ? 'bus ready' : 'bus not ready'),
  });

  const auth = new Auth(config);
  const publishing = { bus, stats, maxMessageBytes: config.maxMessageBytes };
  const server = createServer(
    {
      // Against slowloris: a request must complete its headers (and a body its upload) in time;
      // Node checks every connectionsCheckingInterval, so that is kept well below the timeout.
      headersTimeout: config.handshakeTimeoutMs,
      requestTimeout: config.handshakeTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.ceil(config.handshakeTimeoutMs / 4)),
    },
    createHttpHandler({
      bus,
      registry: metrics.registry,
      log,
      maxMessageBytes: config.maxMessageBytes,
      auth,
      allowedOrigins: config.allowedOrigins,
      httpPublishes: new PublishPipeline(publishing, 'http'),
      staticFiles: loadClientFiles(config.serveClient, log),
      historySize: config.historySize,
      isDraining,
    }),
  );
  const upgrades = createUpgradeHandler({
    hub,
    bus,
    stats,
    log,
    maxMessageBytes: config.maxMessageBytes,
    maxChannelsPerClient: config.maxChannelsPerClient,
    maxConnections: config.maxConnections,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    permessageDeflate: config.permessageDeflate,
    allowedOrigins: config.allowedOrigins,
    rateLimitPerSec: config.rateLimitPerSec,
    rateLimitBurst: config.rateLimitBurst,
    wsPublishes: new PublishPipeline(publishing, 'ws'),
    recovery: { maxMessages: config.recoveryMaxMessages, maxBuffered: config.recoveryMaxMessages },
    auth,
    expiries,
    limits: config,
    isDraining,
  });
  server.on('upgrade', upgrades.handle);
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    log.debug({ err: err.message }, 'http client error');
    // Headers (or a body) that did not arrive within HANDSHAKE_TIMEOUT_MS: slowloris, or a dead peer.
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (timedOut) stats.upgradesRejected[UpgradeRejectReason.HandshakeTimeout]++;
    if (socket.writable) {
      socket.end(`HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\n\r\n`);
    }
    // Written, then gone, whether or not the peer ever closes its side.
    (socket as Socket).destroySoon();
  });

  await bus.start();
  const port = await listen(server, config.port, config.host);
  const heartbeat = setInterval(() => hub.heartbeat(), config.pingIntervalMs / heartbeatSlices);
  log.info(
    { port, host: config.host, bus: bus.kind, overflowPolicy: config.overflowPolicy, auth: auth.tokensRequired },
    'listening',
  );

  let stopping: Promise<void> | null = null;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      draining = true;
      upgrades.abortPending();
      log.info({ drainMs: config.drainMs, clients: hub.clientCount }, 'draining');
      await new Promise((resolve) => setTimeout(resolve, config.drainMs));
      clearInterval(heartbeat);
      expiries.stop();
      log.info({ clients: hub.clientCount }, 'closing clients');
      await hub.closeAll(Disconnect.Shutdown);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await bus.close();
      log.info('stopped');
    })();
    return stopping;
  };

  return { port, hub, bus, stats, shutdown };
}

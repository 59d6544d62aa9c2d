// A subscriber load process: holds many WebSocket connections to a target, counts what each
// receives in the current run and records publish-to-receive latency in an HDR histogram.
// Driven by the orchestrator over IPC (see ipc.ts); the orchestrator spreads connections over
// several of these so neither file descriptors nor one core bound the client side.
import * as hdr from 'hdr-histogram-js';
import type { ConnectTarget, Dialect, SubscriberReply, SubscriberRequest } from './ipc.js';
import { nowMicros, readPayload } from './payload.js';
import { MiniWebSocket } from './wsclient.js';
import { SourcePorts } from './source-ports.js';

interface Conn {
  ws: MiniWebSocket | null;
  /** Messages of the current run. */
  n: number;
}

const HANDSHAKE_TIMEOUT_MS = 30_000;
const conns: Conn[] = [];
let run = -1;
let received = 0;
let closed = 0;
let closing = false;
const newHistogram = (): hdr.Histogram =>
  hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
let histogram = newHistogram();
const parsed = { run: 0, sent: 0 };

function send(reply: SubscriberReply): void {
  process.send!(reply);
}

function onPayload(conn: Conn, chunk: Buffer, start: number, end: number): void {
  if (!readPayload(chunk, start, end, parsed) || parsed.run !== run) return;
  conn.n++;
  received++;
  const latency = nowMicros() - parsed.sent;
  histogram.recordValue(latency < 1 ? 1 : latency);
}

/** This process's source ports, per source address it was given (one in practice). */
const sources = new Map<string, SourcePorts>();
function sourceOf(localAddress: string): SourcePorts {
  let source = sources.get(localAddress);
  if (source === undefined) sources.set(localAddress, (source = new SourcePorts(localAddress)));
  return source;
}

/** Opens one connection; resolves once the target will deliver broadcasts to it. */
function open(url: string, dialect: Dialect, localAddress: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const conn: Conn = { ws: null, n: 0 };
    let ready = false;
    const timer = setTimeout(() => {
      conn.ws!.close();
      reject(new Error(`no handshake within ${HANDSHAKE_TIMEOUT_MS} ms: ${url}`));
    }, HANDSHAKE_TIMEOUT_MS);
    const onReady = (): void => {
      ready = true;
      clearTimeout(timer);
      resolve(conn);
    };
    conn.ws = new MiniWebSocket(url, sourceOf(localAddress), {
      onOpen: () => {
        if (dialect === 'plain') onReady();
      },
      onClose: (reason) => {
        clearTimeout(timer);
        if (!ready) reject(new Error(`${reason}: ${url}`));
        else if (!closing) closed++;
      },
      onMessage:
        dialect === 'plain'
          ? (chunk, start, end) => onPayload(conn, chunk, start, end)
          : // Engine.IO v4 / Socket.IO v5 over a bare WebSocket: '0' open → send '40' (join
            // namespace '/'), '40' connected, '2' ping → '3' pong, '42[...]' an event.
            (chunk, start, end) => {
              const first = chunk[start];
              const second = end - start > 1 ? chunk[start + 1] : -1;
              if (first === 0x34 && second === 0x32) onPayload(conn, chunk, start, end);
              else if (first === 0x32) conn.ws!.send('3');
              else if (first === 0x30) conn.ws!.send('40');
              else if (first === 0x34 && second === 0x30 && !ready) onReady();
            },
    });
  });
}

function urlsOf(targets: readonly ConnectTarget[]): string[] {
  const urls: string[] = [];
  for (const t of targets) for (let i = 0; i < t.count; i++) urls.push(t.url);
  return urls;
}

async function connect(dialect: Dialect, targets: readonly ConnectTarget[], localAddress: string, concurrency: number): Promise<void> {
  const urls = urlsOf(targets);
  // Round-robin order, so a partial failure does not hit one target only.
  let next = 0;
  let failed = 0;
  let firstError: string | null = null;
  const worker = async (): Promise<void> => {
    while (next < urls.length) {
      const url = urls[next++]!;
      try {
        conns.push(await open(url, dialect, localAddress));
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, worker));
  send({ type: 'connected', open: conns.length, failed, firstError });
}

/**
 * (h) Opens `batch` connections at once, closes them as soon as all are open (the TCP connection
 * dropped, no close handshake: the server must clean up either way), then the next batch.
 */
async function churn(dialect: Dialect, targets: readonly ConnectTarget[], localAddress: string, batch: number): Promise<void> {
  const urls = urlsOf(targets);
  let opened = 0;
  let failed = 0;
  let firstError: string | null = null;
  for (let i = 0; i < urls.length; i += batch) {
    const results = await Promise.allSettled(urls.slice(i, i + batch).map((url) => open(url, dialect, localAddress)));
    for (const r of results) {
      if (r.status === 'fulfilled') {
        opened++;
        r.value.ws!.close();
      } else {
        failed++;
        firstError ??= (r.reason as Error).message;
      }
    }
  }
  send({ type: 'churned', opened, failed, firstError });
}

function report(): void {
  let silent = 0;
  let openNow = 0;
  for (const c of conns) {
    if (c.n === 0) silent++;
    if (c.ws!.open) openNow++;
  }
  send({ type: 'report', received, silent, open: openNow, closed, histogram: hdr.encodeIntoCompressedBase64(histogram) });
}

process.on('message', (msg: SubscriberRequest) => {
  switch (msg.type) {
    case 'connect':
      void connect(msg.dialect, msg.targets, msg.localAddress, msg.concurrency);
      break;
    case 'churn':
      void churn(msg.dialect, msg.targets, msg.localAddress, msg.batch);
      break;
    case 'run':
      run = msg.run;
      received = 0;
      for (const c of conns) c.n = 0;
      histogram.destroy();
      histogram = newHistogram();
      send({ type: 'ran' });
      break;
    case 'report':
      report();
      break;
    case 'close':
      closing = true;
      for (const c of conns) c.ws!.close();
      send({ type: 'closed' });
      process.disconnect();
      break;
  }
});
process.on('disconnect', () => process.exit(0));

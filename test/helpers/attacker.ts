// A hostile client in its own process, so its CPU does not skew the measuring test process.
// Run: node attacker.js '<json Attack>'; prints one JSON line of figures on stdout and exits.
//   flood:   one WebSocket publishing `rate` messages/s for `durationMs`, reconnecting when closed.
//   storm:   `count` WebSocket connection attempts spread over `durationMs`; opened ones stay open
//            until `holdMs` after the last attempt.
//   slowloris: `count` raw sockets that send an upgrade's headers one byte every `byteEveryMs`.
import { connect as tcpConnect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

export type Attack =
  | { mode: 'flood'; url: string; rate: number; durationMs: number; channel: string }
  | { mode: 'storm'; url: string; count: number; durationMs: number; holdMs: number }
  | { mode: 'slowloris'; port: number; count: number; byteEveryMs: number; durationMs: number };

async function flood(a: Extract<Attack, { mode: 'flood' }>): Promise<Record<string, number>> {
  const out = { sent: 0, connects: 0, closed1008: 0, otherCloses: 0, rateLimitedFrames: 0, acks: 0 };
  const end = Date.now() + a.durationMs;
  const frame = JSON.stringify({ op: 'publish', channel: a.channel, data: 'x'.repeat(32) });
  const perTick = Math.max(1, Math.round(a.rate / 100));
  while (Date.now() < end) {
    const ws = new WebSocket(a.url);
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      if (data.includes('rate_limited')) out.rateLimitedFrames++;
    });
    const closed = new Promise<number>((resolve) => ws.on('close', (code: number) => resolve(code)));
    const opened = await Promise.race([new Promise<boolean>((r) => ws.once('open', () => r(true))), closed.then(() => false)]);
    if (!opened) {
      await sleep(50);
      continue;
    }
    out.connects++;
    // 10 ms ticks of rate/100 frames each; ticks that fall behind are skipped, never bunched.
    let next = Date.now();
    let open = true;
    void closed.then(() => {
      open = false;
    });
    while (open && Date.now() < end) {
      for (let i = 0; i < perTick && ws.readyState === WebSocket.OPEN; i++) {
        ws.send(frame);
        out.sent++;
      }
      next += 10;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else next = Date.now();
    }
    if (ws.readyState === WebSocket.OPEN) ws.terminate();
    const code = await closed;
    if (code === 1008) out.closed1008++;
    else if (Date.now() < end) out.otherCloses++;
  }
  return out;
}

async function storm(a: Extract<Attack, { mode: 'storm' }>): Promise<Record<string, number>> {
  const out = { attempts: 0, opened: 0, refused503: 0, refusedOther: 0, failed: 0 };
  const sockets: WebSocket[] = [];
  const settled: Promise<void>[] = [];
  const batches = Math.max(1, Math.floor(a.durationMs / 20));
  const perBatch = Math.ceil(a.count / batches);
  const start = Date.now();
  for (let b = 0; out.attempts < a.count; b++) {
    for (let i = 0; i < perBatch && out.attempts < a.count; i++) {
      out.attempts++;
      const ws = new WebSocket(a.url, { handshakeTimeout: 15_000 });
      sockets.push(ws);
      ws.on('error', () => undefined);
      settled.push(
        new Promise<void>((resolve) => {
          // Exactly one outcome per attempt: terminate() after a refusal also emits 'error'.
          let done = false;
          const settle = (count: () => void): void => {
            if (done) return;
            done = true;
            count();
            resolve();
          };
          ws.once('open', () => settle(() => out.opened++));
          ws.once('unexpected-response', (_req, res) => {
            settle(() => (res.statusCode === 503 ? out.refused503++ : out.refusedOther++));
            res.resume();
            ws.terminate();
          });
          ws.once('error', () => settle(() => out.failed++));
          ws.once('close', () => settle(() => out.failed++));
        }),
      );
    }
    const wait = start + (b + 1) * 20 - Date.now();
    if (wait > 0) await sleep(wait);
  }
  await Promise.all(settled);
  await sleep(a.holdMs);
  for (const ws of sockets) ws.terminate();
  return out;
}

async function slowloris(a: Extract<Attack, { mode: 'slowloris' }>): Promise<Record<string, number>> {
  const request = `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Pad: ${'a'.repeat(4096)}`;
  const sockets: Socket[] = [];
  for (let i = 0; i < a.count; i++) {
    const s = tcpConnect(a.port, '127.0.0.1');
    s.on('error', () => undefined);
    s.resume();
    sockets.push(s);
  }
  let bytesSent = 0;
  const end = Date.now() + a.durationMs;
  for (let pos = 0; Date.now() < end && pos < request.length; pos++) {
    for (const s of sockets) {
      if (s.destroyed) continue;
      s.write(request[pos]!);
      bytesSent++;
    }
    if (sockets.every((s) => s.destroyed)) break;
    await sleep(a.byteEveryMs);
  }
  // Sockets the server has not closed by now are closed here, and do not count as closed by it.
  const closedByServer = sockets.filter((s) => s.destroyed).length;
  for (const s of sockets) s.destroy();
  return { sockets: a.count, closedByServer, bytesSent };
}

async function main(): Promise<void> {
  const attack = JSON.parse(process.argv[2] ?? '{}') as Attack;
  const result = attack.mode === 'flood' ? await flood(attack) : attack.mode === 'storm' ? await storm(attack) : await slowloris(attack);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

void main();

// The orchestrator's side of the load processes: forks subscribers and the publisher, and talks
// to them over IPC one request at a time.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { type Layout, type Placement, spread } from './layout.js';
import { AddressBlocks, sourceAddress } from './source-ports.js';
import type { Dialect, PublisherDialect, PublisherReply, PublisherRequest, SubscriberReply, SubscriberRequest } from './ipc.js';

const SUBSCRIBER = fileURLToPath(new URL('./subscriber.js', import.meta.url));
const PUBLISHER = fileURLToPath(new URL('./publisher.js', import.meta.url));

class Worker<Req, Rep extends { type: string }> {
  readonly proc: ChildProcess;
  private readonly exited: Promise<void>;

  constructor(script: string) {
    this.proc = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.exited = new Promise((resolve) => this.proc.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  request<K extends Rep['type']>(msg: Req, type: K, timeoutMs: number): Promise<Extract<Rep, { type: K }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`load process ${this.pid} gave no '${type}' within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (reply: Rep): void => {
        if (reply.type !== type) return;
        cleanup();
        resolve(reply as Extract<Rep, { type: K }>);
      };
      const onExit = (code: number | null): void => {
        cleanup();
        reject(new Error(`load process ${this.pid} exited (${code}) while waiting for '${type}'`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.proc.off('message', onMessage);
        this.proc.off('exit', onExit);
      };
      this.proc.on('message', onMessage);
      this.proc.once('exit', onExit);
      this.proc.send(msg as object);
    });
  }

  async stop(msg: Req): Promise<void> {
    if (this.proc.exitCode === null && this.proc.connected) {
      await this.request(msg, 'closed' as Rep['type'], 10_000).catch(() => undefined);
    }
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface Totals {
  received: number;
  silent: number;
  open: number;
  closed: number;
  histogram: hdr.Histogram | null;
}

/** Each Subscribers takes the next block of source addresses (source-ports.ts). */
const blocks = new AddressBlocks(process.pid);

/** Subscriber connections spread over several processes, each with its own loopback source address. */
export class Subscribers {
  private readonly workers: Worker<SubscriberRequest, SubscriberReply>[] = [];
  /** This set's address block: load process i connects from 127.0.<block>.<2+i>. */
  private readonly block = blocks.next();

  constructor(processes: number) {
    for (let i = 0; i < processes; i++) this.workers.push(new Worker(SUBSCRIBER));
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Opens every connection of the layout on the server and channel it places it on; throws unless every one opened. */
  async connect(dialect: Dialect, layout: Layout, urlOf: (p: Placement) => string, concurrency = 100): Promise<void> {
    const shares = spread(layout, this.workers.length, urlOf);
    const replies = await Promise.all(
      this.workers.map((w, i) =>
        w.request({ type: 'connect', dialect, targets: shares[i]!, localAddress: sourceAddress(this.block, i), concurrency }, 'connected', 300_000),
      ),
    );
    const failed = replies.reduce((a, r) => a + r.failed, 0);
    if (failed > 0) {
      throw new Error(`${failed} of ${layout.connections} connections failed; first: ${replies.find((r) => r.firstError)?.firstError}`);
    }
  }

  /** (h) Opens and closes every connection of the layout, `batch` at a time over all processes; throws unless every one opened. */
  async churn(dialect: Dialect, layout: Layout, urlOf: (p: Placement) => string, batch: number): Promise<void> {
    const shares = spread(layout, this.workers.length, urlOf);
    const perProcess = Math.max(1, Math.round(batch / this.workers.length));
    const replies = await Promise.all(
      this.workers.map((w, i) =>
        w.request({ type: 'churn', dialect, targets: shares[i]!, localAddress: sourceAddress(this.block, i), batch: perProcess }, 'churned', 600_000),
      ),
    );
    const failed = replies.reduce((a, r) => a + r.failed, 0);
    if (failed > 0) {
      throw new Error(`churn: ${failed} of ${layout.connections} connections failed; first: ${replies.find((r) => r.firstError)?.firstError}`);
    }
  }

  /** Starts counting run `run` from zero. */
  async run(run: number): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request({ type: 'run', run }, 'ran', 10_000)));
  }

  async totals(withHistogram: boolean): Promise<Totals> {
    const reports = await Promise.all(this.workers.map((w) => w.request({ type: 'report' }, 'report', 30_000)));
    const totals: Totals = { received: 0, silent: 0, open: 0, closed: 0, histogram: null };
    for (const r of reports) {
      totals.received += r.received;
      totals.silent += r.silent;
      totals.open += r.open;
      totals.closed += r.closed;
      if (withHistogram) {
        const h = hdr.decodeFromCompressedBase64(r.histogram);
        if (totals.histogram === null) totals.histogram = h;
        else {
          totals.histogram.add(h);
          h.destroy();
        }
      }
    }
    return totals;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop({ type: 'close' })));
  }
}

export class Publisher {
  private readonly worker = new Worker<PublisherRequest, PublisherReply>(PUBLISHER);

  get pid(): number {
    return this.worker.pid;
  }

  async connect(dialect: PublisherDialect, urls: readonly string[]): Promise<void> {
    await this.worker.request({ type: 'connect', dialect, urls }, 'connected', 30_000);
  }

  /** Publishes open-loop, message s on channels[s % channels.length]; resolves with how many messages went out once the last has. */
  async publish(run: number, rate: number, durationMs: number, size: number, channels: readonly string[]): Promise<{ sent: number; elapsedMs: number }> {
    return this.worker.request({ type: 'publish', run, rate, durationMs, size, channels }, 'published', durationMs + 60_000);
  }

  async close(): Promise<void> {
    await this.worker.stop({ type: 'close' });
  }
}

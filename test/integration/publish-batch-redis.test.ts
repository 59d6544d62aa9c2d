// The WebSocket publish path on a real Redis, history on and off: a turn's publishes settle on
// their receipts with the Promises of one batch, not one (or three) per publish, as the path made
// before batching (the awaited variant, counted beside it, shows what per-publish costs).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { OPEN_GRANT } from '../../services/gateway/src/auth.js';
import type { BusUnavailableError, PublishReceipt } from '../../services/gateway/src/bus/bus.js';
import { RedisBus } from '../../services/gateway/src/bus/redis.js';
import { PublishPipeline, type PublishRefused } from '../../services/gateway/src/publish.js';
import { Stats } from '../../services/gateway/src/stats.js';
import { gatewayPromisesDuring } from '../helpers/promises.js';
import { type RedisHandle, startRedis, uniquePrefix } from '../helpers/redis.js';
import { within } from '../helpers/wait.js';

/** What connection.ts's receipt does with each settle: hands it to the pipeline (which counts), keeps the answer. */
class Answers implements PublishReceipt<number> {
  readonly answers: (PublishRefused | null)[] = [];
  constructor(private readonly pipeline: PublishPipeline) {}
  settled(_token: number, err: BusUnavailableError | null): void {
    this.answers.push(this.pipeline.settled(err));
  }
}

describe('publish batch on Redis', { timeout: 60_000 }, () => {
  let redis: RedisHandle;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.close());

  for (const history of [{ size: 100, ttlS: 60 }, null]) {
    test(`history ${history === null ? 'off' : 'on'}: 200 publishes of one turn make a handful of Promises, all taken and counted`, { timeout: 30_000 }, async (t) => {
      const stats = new Stats();
      const bus = new RedisBus({ url: redis.url, prefix: uniquePrefix(), timeoutMs: 2000, probeIntervalMs: 200, probeTimeoutMs: 3000, history }, stats, pino({ level: 'silent' }));
      let ready!: () => void;
      const isReady = new Promise<void>((resolve) => {
        ready = resolve;
      });
      bus.setListener({ message: () => undefined, lost: () => undefined, readiness: (r) => r && ready() });
      t.after(() => bus.close());
      await bus.start();
      await within(isReady, 10_000, 'the bus to be ready');
      const ws = new PublishPipeline({ bus, stats, maxMessageBytes: 1000 }, 'ws');
      const answers = new Answers(ws);
      // Warm-up: the script is loaded (EVALSHA's first NOSCRIPT fallback) outside the count.
      ws.publish(OPEN_GRANT, { channel: 'c0', data: 0 }, false, answers, 0);
      await within(new Promise<void>((resolve) => {
        const poll = (): void => (answers.answers.length === 1 ? resolve() : void setImmediate(poll));
        poll();
      }), 5000, 'the warm-up publish');
      const n = 200;
      const created = await gatewayPromisesDuring(() => {
        for (let i = 1; i <= n; i++) ws.publish(OPEN_GRANT, { channel: `c${i % 7}`, data: i }, false, answers, i);
      }, () => answers.answers.length === n + 1);
      assert.ok(answers.answers.every((a) => a === null), 'all taken');
      assert.equal(stats.publishesAccepted.ws, n + 1);
      assert.ok(created <= 10, `one batch's Promises, not one per publish (${created})`);
      const awaited = await gatewayPromisesDuring(() => {
        for (let i = 0; i < 20; i++) void ws.publishAwaited(OPEN_GRANT, { channel: 'c1', data: i });
      }, () => stats.publishesAccepted.ws === n + 21);
      assert.ok(awaited >= 20, `the count sees per-publish Promises (${awaited})`);
    });
  }
});

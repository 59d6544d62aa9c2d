// One integration suite's world: its own Redis, the gateways and clients it started, and their
// cleanup, registered with the suite's hooks so nothing outlives it.
import { type TestContext, after, before } from 'node:test';
import type { ClientOptions } from 'ws';
import { TestClient } from './client.js';
import { type GatewayProcess, startGateway } from './gateway.js';
import { type RedisHandle, startRedis } from './redis.js';

export class Fixture {
  private handle: RedisHandle | null = null;
  readonly gateways: GatewayProcess[] = [];
  readonly clients: TestClient[] = [];

  get redis(): RedisHandle {
    if (this.handle === null) throw new Error('the fixture has no Redis yet (use it inside tests)');
    return this.handle;
  }

  /**
   * This fixture's Redis if the test may stop, restart or freeze it; otherwise the test is
   * skipped with the reason (an external REDIS_URL or a container) and null is returned.
   */
  controllableRedis(t: TestContext, action: string): RedisHandle | null {
    const redis = this.redis;
    if (redis.restartUnsupported === null) return redis;
    t.skip(`cannot ${action} Redis here: ${redis.restartUnsupported}`);
    return null;
  }

  async start(): Promise<void> {
    this.handle = await startRedis();
  }

  /** A gateway on this fixture's Redis, ready before it is returned. */
  async gateway(env: Record<string, string> = {}): Promise<GatewayProcess> {
    const gateway = await startGateway({ REDIS_URL: this.redis.url, ...env });
    this.gateways.push(gateway);
    await gateway.waitReady();
    return gateway;
  }

  async connect(url: string, options?: ClientOptions): Promise<TestClient> {
    const client = await TestClient.connect(url, 10_000, options);
    this.clients.push(client);
    return client;
  }

  async cleanup(): Promise<void> {
    for (const client of this.clients) client.close();
    await Promise.all(this.gateways.map((g) => g.kill()));
    await this.handle?.close();
  }
}

/** A fixture whose Redis starts before the suite's tests and which is torn down after them. */
export function useFixture(): Fixture {
  const fixture = new Fixture();
  before(() => fixture.start());
  after(() => fixture.cleanup());
  return fixture;
}

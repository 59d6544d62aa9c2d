// Issue 10 wired into one gateway on a real Redis: positions on frames and acks, the seam of a
// recovery under continuous publishing (every offset once, in order), `since` parsing, `ping`,
// GET /history (parameters, permissions, history off) and HISTORY_SIZE=0 without positions.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isValidEpoch } from '../../services/gateway/src/bus/position.js';
import type { ServerFrame, TestClient } from '../helpers/client.js';
import { useFixture } from '../helpers/fixture.js';
import { uniquePrefix } from '../helpers/redis.js';
import { TEST_SECRET, hs256, nowSec } from '../helpers/tokens.js';

const API_KEY = 'history-api-key-at-least-32-characters';

/** The offsets of the messages a client got on a channel, in arrival order. */
const offsets = (c: TestClient, channel: string): number[] => c.messages(channel).map((m) => m.offset!);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('recovery wiring', { timeout: 120_000 }, () => {
  const fx = useFixture();

  test('the seam: a client away while publishing continues comes back with since and gets every offset once, in order', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix() });
    const publisher = await fx.connect(gateway.ws());
    const first = await fx.connect(gateway.ws());
    const ack = await first.request({ op: 'subscribe', channel: 'seam' });
    assert.equal(ack.op, 'ack');
    assert.equal(ack.offset, 0, 'a channel never published');
    assert.ok(isValidEpoch(ack.epoch));

    // Publishing runs on, unawaited, for the whole test: 400 messages at a steady pace, so the
    // second subscribe lands while messages keep coming (its read and live ones overlap).
    const TOTAL = 400;
    let sent = 0;
    const publishing = (async () => {
      while (sent < TOTAL) {
        publisher.send({ op: 'publish', channel: 'seam', data: ++sent });
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();

    await first.waitForCount(() => first.messages('seam').length, 50, 20_000, '50 messages before leaving');
    first.close();
    const seen = offsets(first, 'seam');
    const last = first.messages('seam').at(-1)!;
    assert.deepEqual(seen, range(1, seen.length), 'in order before leaving');
    assert.equal(last.epoch, ack.epoch);

    const second = await fx.connect(gateway.ws());
    const resumed = await second.request({ op: 'subscribe', channel: 'seam', since: { offset: last.offset, epoch: last.epoch } }, 20_000);
    assert.equal(resumed.op, 'ack', JSON.stringify(resumed));
    assert.equal(resumed.recovered, true, JSON.stringify(resumed));
    assert.equal(resumed.epoch, ack.epoch);
    assert.ok(resumed.offset! >= last.offset!, 'the ack is at the top the read saw');
    assert.ok(sent < TOTAL, 'publishing was still going on at the seam');
    await publishing;
    await second.waitForCount(() => second.messages('seam').length, TOTAL - last.offset!, 30_000, 'every message after the position');
    assert.deepEqual(offsets(second, 'seam'), range(last.offset! + 1, TOTAL), 'each offset once, in order, no gap at the seam');
    assert.deepEqual(second.messages('seam').map((m) => m.data), range(last.offset! + 1, TOTAL));
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="recovered"}'), 1);
  });

  test('since: malformed is invalid_message; a foreign epoch or an offset past the top is recovered false at the current position', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix() });
    const client = await fx.connect(gateway.ws());
    for (const since of [5, 'x', null, { offset: -1, epoch: 'AAAAAAAAAAAA' }, { offset: 1.5, epoch: 'AAAAAAAAAAAA' }, { offset: 1 }, { offset: 1, epoch: 'bad epoch' }]) {
      const reply = await client.request({ op: 'subscribe', channel: 'm', since });
      assert.equal(reply.code, 'invalid_message', JSON.stringify(since));
    }
    assert.equal((await client.request({ op: 'publish', channel: 'm', data: 1 })).op, 'ack');
    const { epoch } = (await client.request({ op: 'subscribe', channel: 'm' })) as ServerFrame & { epoch: string };
    await client.request({ op: 'unsubscribe', channel: 'm' });
    const foreign = await client.request({ op: 'subscribe', channel: 'm', since: { offset: 0, epoch: epoch === 'AAAAAAAAAAAA' ? 'BBBBBBBBBBBB' : 'AAAAAAAAAAAA' } });
    assert.deepEqual(foreign, { op: 'ack', id: foreign.id, offset: 1, epoch, recovered: false });
    await client.request({ op: 'unsubscribe', channel: 'm' });
    const beyond = await client.request({ op: 'subscribe', channel: 'm', since: { offset: 9, epoch } });
    assert.deepEqual(beyond, { op: 'ack', id: beyond.id, offset: 1, epoch, recovered: false });
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="epoch_mismatch"}'), 1);
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="beyond_top"}'), 1);
    assert.equal(client.messages('m').length, 0, 'nothing replayed');
  });

  test('ping with an id is acked; without one nothing comes back', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix() });
    const client = await fx.connect(gateway.ws());
    client.send({ op: 'ping' });
    assert.deepEqual(await client.request({ op: 'ping' }), { op: 'ack', id: 1 });
    assert.equal(client.frames.length, 1, 'the ping without an id got no reply');
  });

  test('HISTORY_SIZE=0: no positions anywhere, and since is answered recovered false', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), HISTORY_SIZE: '0' });
    const client = await fx.connect(gateway.ws());
    const ack = await client.request({ op: 'subscribe', channel: 'off', since: { offset: 3, epoch: 'AAAAAAAAAAAA' } });
    assert.deepEqual(ack, { op: 'ack', id: ack.id, recovered: false });
    await client.request({ op: 'publish', channel: 'off', data: 'x' });
    assert.deepEqual(await client.waitFor((f) => f.op === 'message'), { op: 'message', channel: 'off', data: 'x' });
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="no_history"}'), 1);
    const res = await fetch(`${gateway.http}/history?channel=off`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { code: string }).code, 'history_disabled');
  });

  test('GET /history: the messages after since with their data as published, the top and the epoch; bad parameters 400', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), HISTORY_SIZE: '10' });
    const client = await fx.connect(gateway.ws());
    const data = [{ a: 1 }, 'two', [3], null, 5.5];
    for (const d of data) await client.request({ op: 'publish', channel: 'h', data: d });
    const res = await fetch(`${gateway.http}/history?channel=h&since=2`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { epoch: string; offset: number; messages: { offset: number; data: unknown }[] };
    assert.ok(isValidEpoch(body.epoch));
    assert.deepEqual(body, { epoch: body.epoch, offset: 5, messages: [3, 4, 5].map((offset) => ({ offset, data: data[offset - 1] })) });
    const limited = (await (await fetch(`${gateway.http}/history?channel=h&limit=2&epoch=${body.epoch}`)).json()) as typeof body;
    assert.deepEqual(limited.messages.map((m) => m.offset), [1, 2]);
    const foreign = (await (await fetch(`${gateway.http}/history?channel=h&epoch=AAAAAAAAAAAA`)).json()) as typeof body;
    assert.deepEqual(foreign.messages, [], 'another epoch names other messages');
    for (const [query, code] of [
      ['channel=bad%20name', 'invalid_channel'],
      ['', 'invalid_channel'],
      ['channel=h&since=-1', 'invalid_message'],
      ['channel=h&since=x', 'invalid_message'],
      ['channel=h&epoch=no%20epoch', 'invalid_message'],
      ['channel=h&limit=0', 'invalid_message'],
      ['channel=h&limit=11', 'invalid_message'],
    ]) {
      const bad = await fetch(`${gateway.http}/history?${query}`);
      assert.equal(bad.status, 400, query);
      assert.equal(((await bad.json()) as { code: string }).code, code, query);
    }
    assert.equal((await fetch(`${gateway.http}/history?channel=h`, { method: 'POST' })).status, 405);
    const foreignPage = await fetch(`${gateway.http}/history?channel=h`, { headers: { origin: 'https://evil.example' } });
    assert.equal(foreignPage.status, 403, 'the origin rule applies');
  });

  test('GET /history needs the subscribe permission of a bearer token, or the API key', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), AUTH_JWT_SECRET: TEST_SECRET, PUBLISH_API_KEY: API_KEY });
    const get = (channel: string, bearer?: string): Promise<Response> =>
      fetch(`${gateway.http}/history?channel=${channel}`, bearer === undefined ? {} : { headers: { authorization: `Bearer ${bearer}` } });
    const reader = await hs256({ sub: 'r', exp: nowSec() + 60, subscribe: ['room.*'] });
    const writer = await hs256({ sub: 'w', exp: nowSec() + 60, publish: ['*'] });
    assert.equal((await get('room.1', reader)).status, 200);
    assert.equal((await get('other', reader)).status, 403);
    assert.equal((await get('room.1', writer)).status, 403, 'publish rights do not read');
    assert.equal((await get('room.1', API_KEY)).status, 200);
    assert.equal((await get('room.1')).status, 401);
    assert.equal((await get('room.1', 'not-a-token')).status, 401);
  });
});

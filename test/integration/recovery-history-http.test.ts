// GET /history and the permission a recovery needs (issue 10, Proof), with auth on: the happy path
// (every message after since, in order, with its data, bounded by limit, the top beside it), the
// 400s with their error codes, 401 without credentials and 403 outside the token's subscribe
// patterns; a subscribe with since outside them is forbidden and replays nothing. With history
// off: /history is 404 history_disabled and a since gets recovered:false without a position.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { useFixture } from '../helpers/fixture.js';
import type { GatewayProcess } from '../helpers/gateway.js';
import { FOREIGN_EPOCH, type PositionedFrame, subscribe } from '../helpers/positions.js';
import { uniquePrefix } from '../helpers/redis.js';
import { TEST_SECRET, hs256 } from '../helpers/tokens.js';

const API_KEY = 'history-api-key-0123456789-abcdefghij';
const CHANNEL = 'hist';

interface HistoryBody {
  readonly epoch: string;
  readonly offset: number;
  readonly messages: { readonly offset: number; readonly data: unknown }[];
  readonly code?: string;
}

describe('GET /history and recovery permissions (auth on)', { timeout: 60_000 }, () => {
  const fx = useFixture();
  let gateway: GatewayProcess;
  let epoch: string;
  let reader: string;

  async function history(query: string, bearer: string | null = API_KEY): Promise<{ status: number; body: HistoryBody }> {
    const res = await fetch(`${gateway.http}/history${query}`, { headers: bearer === null ? {} : { authorization: `Bearer ${bearer}` } });
    return { status: res.status, body: (await res.json()) as HistoryBody };
  }

  async function publish(channel: string, data: unknown): Promise<void> {
    const res = await fetch(`${gateway.http}/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ channel, data }),
    });
    assert.equal(res.status, 202);
  }

  before(async () => {
    gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), AUTH_JWT_SECRET: TEST_SECRET, PUBLISH_API_KEY: API_KEY });
    reader = await hs256({ sub: 'reader', subscribe: [CHANNEL, 'other'] });
    const watcher = await fx.connect(`${gateway.ws()}?token=${reader}`);
    const ack = await subscribe(watcher, CHANNEL);
    assert.equal(ack.offset, 0, 'a channel never published is at offset 0');
    epoch = ack.epoch;
    for (let i = 1; i <= 5; i++) await publish(CHANNEL, { i, text: `message ${i}` });
    await watcher.waitForCount(() => watcher.messages(CHANNEL).length, 5, 10_000, 'five messages');
  });

  test('every message after since, with its data, in order; limit bounds it; the top beside it', async () => {
    const all = await history(`?channel=${CHANNEL}&since=0&epoch=${epoch}`);
    assert.equal(all.status, 200);
    assert.deepEqual(all.body, {
      epoch,
      offset: 5,
      messages: [1, 2, 3, 4, 5].map((i) => ({ offset: i, data: { i, text: `message ${i}` } })),
    });
    const page = await history(`?channel=${CHANNEL}&since=2&epoch=${epoch}&limit=2`, reader);
    assert.equal(page.status, 200, 'a token that may subscribe may read');
    assert.deepEqual(page.body, { epoch, offset: 5, messages: [3, 4].map((i) => ({ offset: i, data: { i, text: `message ${i}` } })) });
    const none = await history(`?channel=${CHANNEL}&since=5&epoch=${epoch}`);
    assert.deepEqual(none.body, { epoch, offset: 5, messages: [] });
    // Another epoch's offsets name other messages: none is returned, and the current epoch tells why.
    const foreign = await history(`?channel=${CHANNEL}&since=0&epoch=${FOREIGN_EPOCH}`);
    assert.equal(foreign.status, 200);
    assert.deepEqual(foreign.body, { epoch, offset: 5, messages: [] });
    assert.ok((await gateway.metric('hubcast_history_read_duration_seconds_count{purpose="http"}')) >= 4);
  });

  test('bad parameters: 400 with their error code', async () => {
    const cases: [string, string][] = [
      ['', 'invalid_channel'],
      ['?channel=', 'invalid_channel'],
      ['?channel=bad%20channel&since=0', 'invalid_channel'],
      [`?channel=${'x'.repeat(129)}&since=0`, 'invalid_channel'],
      [`?channel=${CHANNEL}&since=-1&epoch=${epoch}`, 'invalid_message'],
      [`?channel=${CHANNEL}&since=abc&epoch=${epoch}`, 'invalid_message'],
      [`?channel=${CHANNEL}&since=1.5&epoch=${epoch}`, 'invalid_message'],
      [`?channel=${CHANNEL}&since=0&epoch=not%20an%20epoch`, 'invalid_message'],
      [`?channel=${CHANNEL}&since=0&epoch=${epoch}&limit=abc`, 'invalid_message'],
      [`?channel=${CHANNEL}&since=0&epoch=${epoch}&limit=-1`, 'invalid_message'],
    ];
    for (const [query, code] of cases) {
      const res = await history(query);
      assert.deepEqual([res.status, res.body.code], [400, code], `GET /history${query}`);
    }
  });

  test('401 without credentials, 403 outside the subscribe patterns', async () => {
    const query = `?channel=${CHANNEL}&since=0&epoch=${epoch}`;
    const anonymous = await history(query, null);
    assert.deepEqual([anonymous.status, anonymous.body.code], [401, 'unauthorized']);
    const wrongKey = await history(query, 'not-the-api-key-0123456789-abcdefghij');
    assert.equal(wrongKey.status, 401);
    const stranger = await hs256({ sub: 'stranger', subscribe: ['other'] });
    const outside = await history(query, stranger);
    assert.deepEqual([outside.status, outside.body.code], [403, 'forbidden']);
    assert.equal(outside.body.messages, undefined, 'nothing of the channel in the refusal');
  });

  test('a recovery needs subscribe permission: forbidden, nothing replayed', async () => {
    const stranger = await hs256({ sub: 'stranger', subscribe: ['other'] });
    const client = await fx.connect(`${gateway.ws()}?token=${stranger}`);
    const reply = (await client.request({ op: 'subscribe', channel: CHANNEL, since: { offset: 0, epoch } })) as PositionedFrame;
    assert.deepEqual([reply.op, reply.code], ['error', 'forbidden']);
    assert.equal(reply.offset, undefined, 'no position leaks in the refusal');
    // Published on CHANNEL, then on a channel it holds: when the second arrives, the first has not.
    await subscribe(client, 'other');
    await publish(CHANNEL, 'not for strangers');
    await publish('other', 'marker');
    await client.waitFor((f) => f.op === 'message' && f.data === 'marker', 10_000, 'the marker');
    assert.deepEqual(client.messages(CHANNEL), []);
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="recovered"}'), 0);
  });
});

describe('history off (HISTORY_SIZE=0)', { timeout: 60_000 }, () => {
  const fx = useFixture();

  test('/history is 404 history_disabled; since gets recovered:false with no position', async () => {
    const gateway = await fx.gateway({ REDIS_PREFIX: uniquePrefix(), HISTORY_SIZE: '0' });
    const res = await fetch(`${gateway.http}/history?channel=${CHANNEL}&since=0&epoch=${FOREIGN_EPOCH}`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { code: string }).code, 'history_disabled');

    const client = await fx.connect(gateway.ws());
    const ack = (await client.request({ op: 'subscribe', channel: CHANNEL, since: { offset: 3, epoch: FOREIGN_EPOCH } })) as PositionedFrame;
    assert.equal(ack.op, 'ack');
    assert.equal(ack.recovered, false);
    assert.deepEqual([ack.offset, ack.epoch], [undefined, undefined], 'no positions with history off');
    const publisher = await fx.connect(gateway.ws());
    assert.equal((await publisher.request({ op: 'publish', channel: CHANNEL, data: 'plain' })).op, 'ack');
    const message = (await client.waitFor((f) => f.op === 'message', 10_000, 'a message')) as PositionedFrame;
    assert.deepEqual(message, { op: 'message', channel: CHANNEL, data: 'plain' }, 'frames as before history existed');
    assert.equal(await gateway.metric('hubcast_recoveries_total{result="no_history"}'), 1);
  });
});

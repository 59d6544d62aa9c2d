// listen(): a failure that is PORT's or HOST's becomes one ListenError line naming it; others pass through.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { ListenError, listen, listenError } from '../../services/gateway/src/listen.js';

const errno = (code: string, syscall = 'listen'): NodeJS.ErrnoException => Object.assign(new Error(code), { code, syscall });

describe('listenError', () => {
  test('names PORT or HOST and the address, in one line', { timeout: 5000 }, () => {
    const cases: [NodeJS.ErrnoException, string, string][] = [
      [errno('EADDRINUSE'), 'PORT', 'cannot listen: PORT 8080 is already in use on 0.0.0.0 (EADDRINUSE)'],
      [errno('EACCES'), 'PORT', 'cannot listen: PORT 8080 on 0.0.0.0 needs privileges this process does not have (EACCES)'],
      [errno('EADDRNOTAVAIL'), 'HOST', 'cannot listen: HOST 0.0.0.0 is not an address of this machine (EADDRNOTAVAIL)'],
      [errno('ENOTFOUND', 'getaddrinfo'), 'HOST', 'cannot listen: HOST 0.0.0.0 does not resolve to an address (ENOTFOUND)'],
      [errno('EAI_AGAIN', 'getaddrinfo'), 'HOST', 'cannot listen: HOST 0.0.0.0 does not resolve to an address (EAI_AGAIN)'],
    ];
    for (const [err, variable, message] of cases) {
      const mapped = listenError(err, 8080, '0.0.0.0');
      assert.ok(mapped instanceof ListenError);
      assert.deepEqual([mapped.variable, mapped.message], [variable, message]);
    }
  });

  test('a fault that is no setting stays unmapped', { timeout: 5000 }, () => {
    assert.equal(listenError(errno('EMFILE'), 8080, '0.0.0.0'), undefined);
    assert.equal(listenError(new Error('boom'), 8080, '0.0.0.0'), undefined);
  });
});

describe('listen', () => {
  test('resolves with the bound port; a port in use rejects with a ListenError naming PORT', { timeout: 5000 }, async (t) => {
    const first = createServer();
    const second = createServer();
    t.after(() => {
      first.close();
      second.close();
    });
    const port = await listen(first, 0, '127.0.0.1');
    assert.equal(port, (first.address() as AddressInfo).port);
    await assert.rejects(listen(second, port, '127.0.0.1'), (err: unknown) => {
      assert.ok(err instanceof ListenError);
      assert.equal(err.variable, 'PORT');
      assert.equal(err.message, `cannot listen: PORT ${port} is already in use on 127.0.0.1 (EADDRINUSE)`);
      return true;
    });
    assert.equal(second.listenerCount('error'), 0, 'no error listener left behind');
  });
});

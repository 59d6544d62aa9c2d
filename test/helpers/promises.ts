// Counts the Promises the gateway's code creates in a window, to prove a path makes none per
// message (no timing involved). Only Promises with a gateway source frame on their creation stack
// count: the test runner makes its own meanwhile.
import { createHook } from 'node:async_hooks';

const GATEWAY_FRAME = /services[/\\]gateway[/\\]src[/\\]/;

/**
 * Runs run(), then waits until done() holds (checked once per event-loop turn, at least two
 * turns: a turn's publishes settle at its end), and resolves with the count.
 */
export function gatewayPromisesDuring(run: () => void, done: () => boolean = () => true): Promise<number> {
  return new Promise((resolve) => {
    let created = 0;
    const hook = createHook({
      init(_id, type) {
        if (type === 'PROMISE' && GATEWAY_FRAME.test(new Error().stack ?? '')) created++;
      },
    });
    // Deep enough that a Promise made inside a library the gateway calls still shows the gateway's frame.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 100;
    hook.enable();
    run();
    let turns = 0;
    const check = (): void => {
      if (++turns < 2 || !done()) {
        setImmediate(check);
        return;
      }
      hook.disable();
      Error.stackTraceLimit = limit;
      resolve(created);
    };
    setImmediate(check);
  });
}

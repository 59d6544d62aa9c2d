// A minimal typed event emitter (browsers have no EventEmitter, and EventTarget allocates an
// Event per dispatch). A listener that throws does not break the client: the error is rethrown
// on a fresh task, where it reaches the host's uncaught-error reporting.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- listener parameter lists vary per event
export type Listener = (...args: any[]) => void;

export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  private readonly listeners = new Map<keyof Events, Listener[]>();

  on<K extends keyof Events>(event: K, fn: Events[K]): this {
    const list = this.listeners.get(event);
    if (list === undefined) this.listeners.set(event, [fn]);
    else list.push(fn);
    return this;
  }

  off<K extends keyof Events>(event: K, fn: Events[K]): this {
    const list = this.listeners.get(event);
    const at = list?.indexOf(fn) ?? -1;
    // Copy on removal so an emit in progress keeps iterating the list it started with.
    if (at >= 0) this.listeners.set(event, [...list!.slice(0, at), ...list!.slice(at + 1)]);
    return this;
  }

  protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const list = this.listeners.get(event);
    if (list === undefined) return;
    for (const fn of list) {
      try {
        fn(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}

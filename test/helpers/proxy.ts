// A loopback TCP proxy in front of Redis that a test can starve: stop one direction of one
// connection (TCP stays up, nothing flows; what the server sends waits in its buffers), resume
// it, or cut the connection as a network reset would. Connections are told apart by what the
// client sent first (ioredis sends CLIENT SETNAME, e.g. hubcast-sub). It can also drop just the
// pub/sub message pushes server-to-client (RESP2-aware), so the connection still answers PING and
// SUBSCRIBE but never receives a message: the starvation only an end-to-end probe can see. And it
// can hold back one SUBSCRIBE reply (with all that follows it, so the reply order is kept) until
// the client's next PING: a SUBSCRIBE that times out while every health PING is answered in time.
// And it can refuse one client's connections (cut on their first bytes): a gateway's publisher
// kept away while its subscriber reconnects.
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';

export interface ProxiedConnection {
  /** The first bytes the client sent (up to 4 KiB), latin1. */
  readonly hello: string;
  readonly client: Socket;
  readonly server: Socket;
  readonly open: boolean;
  /** Stops forwarding server-to-client: the client is starved, the server's writes back up. */
  starve(): void;
  /** Forwards server-to-client again, including everything held back. */
  feed(): void;
  /** Drops every pub/sub message push server-to-client from now on (replies still pass). */
  dropPushes(drop: boolean): void;
  /** Message pushes dropped so far. */
  readonly droppedPushes: number;
  /** Destroys both sides: a reset the client notices. */
  cut(): void;
  /** Resolves when the client next sends this command (case-insensitive), as it passes. */
  nextCommand(name: string): Promise<void>;
}

/** End of the RESP2 value starting at offset, or -1 if it is not complete yet. */
function valueEnd(buf: Buffer, offset: number): number {
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd < 0) return -1;
  const type = String.fromCharCode(buf[offset]!);
  const n = Number(buf.toString('latin1', offset + 1, lineEnd));
  switch (type) {
    case '+':
    case '-':
    case ':':
      return lineEnd + 2;
    case '$':
      if (n < 0) return lineEnd + 2;
      return buf.length >= lineEnd + 2 + n + 2 ? lineEnd + 2 + n + 2 : -1;
    case '*': {
      let at = lineEnd + 2;
      for (let i = 0; i < n; i++) {
        if (at >= buf.length) return -1;
        at = valueEnd(buf, at);
        if (at < 0) return -1;
      }
      return at;
    }
    default:
      throw new Error(`proxy: not RESP2 (type byte ${JSON.stringify(type)})`);
  }
}

const MESSAGE_PUSH = Buffer.from('*3\r\n$7\r\nmessage\r\n');
const SUBSCRIBE_REPLY = Buffer.from('*3\r\n$9\r\nsubscribe\r\n');

/** The command name of a RESP2 array of bulk strings (what clients send), lower case. */
function commandName(value: Buffer): string {
  if (value[0] !== 0x2a) return ''; // '*'
  const bulk = value.indexOf('\r\n') + 2;
  const nameAt = value.indexOf('\r\n', bulk) + 2;
  const len = Number(value.toString('latin1', bulk + 1, nameAt - 2));
  return value.toString('latin1', nameAt, nameAt + len).toLowerCase();
}

export interface TcpProxy {
  readonly url: string;
  readonly connections: readonly ProxiedConnection[];
  /** Open connections whose first bytes contain the marker. */
  find(marker: string): ProxiedConnection[];
  /** Drops message pushes on every connection, present and future, whose first bytes contain the marker (null: none). */
  dropPushesWhere(marker: string | null): void;
  /** Cuts every connection, present and future, whose first bytes contain the marker, as soon as they are seen (null: none). */
  refuseWhere(marker: string | null): void;
  /**
   * Once, on a connection (present or future) whose first bytes contain the marker: holds back
   * the first `subscribe` reply naming a channel that contains `channel`, and everything the
   * server sends after it, until the client sends its next PING; then lets it all through,
   * before that PING reaches the server. Resolves with how long the reply was held (ms).
   */
  holdSubscribeReply(marker: string, channel: string): Promise<number>;
  close(): Promise<void>;
}

const HELLO_BYTES = 4096;

/** Proxies 127.0.0.1:<ephemeral> to the target host and port. */
export async function startProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const connections: ProxiedConnection[] = [];
  let dropRule: string | null = null;
  let refuseRule: string | null = null;
  let holdRule: { marker: string; channel: string; released: (ms: number) => void } | null = null;
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    let hello = '';
    let open = true;
    const cut = (): void => {
      open = false;
      client.destroy();
      upstream.destroy();
    };
    // Held server-to-client values (from a held SUBSCRIBE reply on), released at the next PING.
    let held: { values: Buffer[]; since: number; released: (ms: number) => void } | null = null;
    const waiters: { name: string; resolve: () => void }[] = [];
    // Client-to-server bytes are parsed only to see command names; they are forwarded as they come.
    let sent: Buffer = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      if (hello.length < HELLO_BYTES) hello += chunk.toString('latin1', 0, Math.min(chunk.length, HELLO_BYTES));
      if (refuseRule !== null && hello.includes(refuseRule)) return cut();
      sent = sent.length === 0 ? chunk : Buffer.concat([sent, chunk]);
      let at = 0;
      for (;;) {
        const end = at < sent.length && sent[at] === 0x2a ? valueEnd(sent, at) : -1;
        if (end < 0) break;
        const name = commandName(sent.subarray(at, end));
        at = end;
        if (name === 'ping' && held !== null) {
          const { values, since, released } = held;
          held = null;
          if (values.length > 0 && !client.write(Buffer.concat(values))) upstream.pause();
          released(Date.now() - since);
        }
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i]!.name !== name) continue;
          waiters[i]!.resolve();
          waiters.splice(i, 1);
        }
      }
      sent = sent.subarray(at);
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    let starved = false;
    let dropping = false;
    let droppedPushes = 0;
    // Server-to-client bytes are cut at RESP value boundaries so pushes can be dropped whole.
    let pending: Buffer = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      const out: Buffer[] = [];
      for (;;) {
        const end = at < pending.length ? valueEnd(pending, at) : -1;
        if (end < 0) break;
        const value = pending.subarray(at, end);
        const drop = dropping || (dropRule !== null && hello.includes(dropRule));
        if (
          holdRule !== null &&
          held === null &&
          hello.includes(holdRule.marker) &&
          value.subarray(0, SUBSCRIBE_REPLY.length).equals(SUBSCRIBE_REPLY) &&
          value.toString('latin1', SUBSCRIBE_REPLY.length).includes(holdRule.channel)
        ) {
          held = { values: [], since: Date.now(), released: holdRule.released };
          holdRule = null;
        }
        if (drop && value.subarray(0, MESSAGE_PUSH.length).equals(MESSAGE_PUSH)) droppedPushes++;
        else if (held !== null) held.values.push(value);
        else out.push(value);
        at = end;
      }
      pending = pending.subarray(at);
      if (out.length > 0 && !client.write(Buffer.concat(out))) upstream.pause();
    });
    client.on('drain', () => {
      if (!starved) upstream.resume();
    });
    for (const s of [client, upstream]) {
      s.on('error', cut);
      s.on('close', cut);
    }
    connections.push({
      get hello() {
        return hello;
      },
      client,
      server: upstream,
      get open() {
        return open;
      },
      starve: () => {
        starved = true;
        upstream.pause();
      },
      feed: () => {
        starved = false;
        upstream.resume();
      },
      dropPushes: (drop) => {
        dropping = drop;
      },
      get droppedPushes() {
        return droppedPushes;
      },
      cut,
      nextCommand: (name) => new Promise<void>((resolve) => waiters.push({ name: name.toLowerCase(), resolve })),
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    connections,
    find: (marker) => connections.filter((c) => c.open && c.hello.includes(marker)),
    refuseWhere: (marker) => {
      refuseRule = marker;
      if (marker !== null) for (const c of connections) if (c.open && c.hello.includes(marker)) c.cut();
    },
    dropPushesWhere: (marker) => {
      dropRule = marker;
    },
    holdSubscribeReply: (marker, channel) =>
      new Promise<number>((released) => {
        holdRule = { marker, channel, released };
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.cut();
        server.close(() => resolve());
      }),
  };
}

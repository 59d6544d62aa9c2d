// A loopback TCP proxy in front of Redis that a test can starve: stop one direction of one
// connection (TCP stays up, nothing flows; what the server sends waits in its buffers), resume
// it, or cut the connection as a network reset would. Connections are told apart by what the
// client sent first (ioredis sends CLIENT SETNAME, e.g. hubcast-sub). It can also drop just the
// pub/sub message pushes server-to-client (RESP2-aware), so the connection still answers PING and
// SUBSCRIBE but never receives a message: the starvation only an end-to-end probe can see.
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

export interface TcpProxy {
  readonly url: string;
  readonly connections: readonly ProxiedConnection[];
  /** Open connections whose first bytes contain the marker. */
  find(marker: string): ProxiedConnection[];
  /** Drops message pushes on every connection, present and future, whose first bytes contain the marker (null: none). */
  dropPushesWhere(marker: string | null): void;
  close(): Promise<void>;
}

const HELLO_BYTES = 4096;

/** Proxies 127.0.0.1:<ephemeral> to the target host and port. */
export async function startProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const connections: ProxiedConnection[] = [];
  let dropRule: string | null = null;
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    let hello = '';
    let open = true;
    const cut = (): void => {
      open = false;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      if (hello.length < HELLO_BYTES) hello += chunk.toString('latin1', 0, Math.min(chunk.length, HELLO_BYTES));
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
        if (drop && value.subarray(0, MESSAGE_PUSH.length).equals(MESSAGE_PUSH)) droppedPushes++;
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
    dropPushesWhere: (marker) => {
      dropRule = marker;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.cut();
        server.close(() => resolve());
      }),
  };
}

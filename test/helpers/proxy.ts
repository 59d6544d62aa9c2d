// A loopback TCP proxy in front of Redis that a test can starve: stop one direction of one
// connection (TCP stays up, nothing flows; what the server sends waits in its buffers), resume
// it, or cut the connection as a network reset would. Connections are told apart by what the
// client sent first (ioredis sends CLIENT SETNAME, e.g. hubcast-sub).
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
  /** Destroys both sides: a reset the client notices. */
  cut(): void;
}

export interface TcpProxy {
  readonly url: string;
  readonly connections: readonly ProxiedConnection[];
  /** Open connections whose first bytes contain the marker. */
  find(marker: string): ProxiedConnection[];
  close(): Promise<void>;
}

const HELLO_BYTES = 4096;

/** Proxies 127.0.0.1:<ephemeral> to the target host and port. */
export async function startProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const connections: ProxiedConnection[] = [];
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
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
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
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.cut();
        server.close(() => resolve());
      }),
  };
}

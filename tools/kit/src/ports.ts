// Free ports: the kernel picks one (port 0), for servers that cannot report the port they took.
import { createServer } from 'node:net';

/** The port bound on host (0 lets the kernel pick), or -1 when it cannot be bound. */
function tryListen(host: string, port: number): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(-1));
    server.listen(port, host, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : -1;
      server.close(() => resolve(bound));
    });
  });
}

/** A port that was free a moment ago. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const port = await tryListen(host, 0);
  if (port < 0) throw new Error(`cannot bind a port on ${host}`);
  return port;
}

/** A port free on every host: the one port all gateway replicas share, as in compose. */
export async function freePortOn(hosts: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryListen(hosts[0]!, 0);
    if (port < 0) break;
    let free = true;
    for (const host of hosts.slice(1)) if ((await tryListen(host, port)) < 0) free = false;
    if (free) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

/** port itself when it is free on every host (one line naming it when not); a free one for 0. */
export async function requireFree(hosts: readonly string[], port: number, what: string): Promise<number> {
  if (port === 0) return freePortOn(hosts);
  for (const host of hosts) if ((await tryListen(host, port)) < 0) throw new Error(`${what}: ${host}:${port} is in use`);
  return port;
}

// Binding the listen socket. A port in use or a HOST that cannot be bound is the operator's to fix,
// so it becomes one line naming the setting (like a ConfigError), not a stack trace.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** PORT or HOST cannot be bound here: the message is the one line printed before exiting. */
export class ListenError extends Error {
  constructor(
    readonly variable: 'PORT' | 'HOST',
    message: string,
  ) {
    super(`cannot listen: ${variable} ${message}`);
    this.name = 'ListenError';
  }
}

/** The setting a failed listen() is about, or undefined for a fault that is no setting's. */
export function listenError(err: NodeJS.ErrnoException, port: number, host: string): ListenError | undefined {
  const code = err.code ?? 'unknown';
  if (code === 'EADDRINUSE') return new ListenError('PORT', `${port} is already in use on ${host} (${code})`);
  if (code === 'EACCES') return new ListenError('PORT', `${port} on ${host} needs privileges this process does not have (${code})`);
  if (code === 'EADDRNOTAVAIL') return new ListenError('HOST', `${host} is not an address of this machine (${code})`);
  // Node resolves a HOST that is not an IP literal (999.1.1.1 included) with getaddrinfo first.
  if (err.syscall === 'getaddrinfo') return new ListenError('HOST', `${host} does not resolve to an address (${code})`);
  return undefined;
}

/** Listens on host:port; resolves with the bound port (PORT=0 picks one). */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(listenError(err, port, host) ?? err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

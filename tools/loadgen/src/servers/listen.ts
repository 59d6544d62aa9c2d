// Shared by the peer and ceiling servers: listen on PORT (0 = free) on loopback and log the same
// JSON `listening` line as the gateway, so the kit's startGateway starts these too.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export function listenAndAnnounce(server: Server, onStop: () => void): void {
  server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
    const port = (server.address() as AddressInfo).port;
    process.stdout.write(`${JSON.stringify({ msg: 'listening', port })}\n`);
  });
  const stop = (): void => {
    onStop();
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

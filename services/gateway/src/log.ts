// JSON logs on stdout. Synchronous writes: log volume is low (no per-message logging), and a
// sync destination means nothing is lost when the process exits right after a line.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export function createLogger(level: LogLevel): Logger {
  return pino(
    { level, base: { service: 'hubcast-gateway', pid: process.pid } },
    pino.destination({ dest: 1, sync: true }),
  );
}

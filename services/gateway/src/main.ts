// Process entry point: config, logger, gateway, signals. Exit codes: 0 clean stop,
// 78 invalid config (EX_CONFIG), 1 anything else (a PORT or HOST that cannot be bound included).
import { type Config, ConfigError, loadConfig } from './config.js';
import { startGateway } from './gateway.js';
import { ListenError } from './listen.js';
import { createLogger } from './log.js';

const EXIT_CONFIG = 78;
/** Slack beyond DRAIN_MS + CLOSE_TIMEOUT_MS before a stuck shutdown is cut short. */
const SHUTDOWN_SLACK_MS = 5000;

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  throw err;
}

const log = createLogger(config.logLevel);
const starting = startGateway(config, log);

// Handlers go in before the gateway listens, so a signal at any moment gets the orderly stop.
let signalled = false;
function onSignal(signal: NodeJS.Signals): void {
  if (signalled) {
    log.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  signalled = true;
  log.info({ signal }, 'shutting down');
  const bound = config.drainMs + config.closeTimeoutMs + SHUTDOWN_SLACK_MS;
  setTimeout(() => {
    log.error({ boundMs: bound }, 'shutdown took too long; exiting');
    process.exit(1);
  }, bound).unref();
  starting
    .then((gateway) => gateway.shutdown())
    .then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
}
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

starting.catch((err: unknown) => {
  // The operator's to fix, and said in one line like a ConfigError; anything else keeps its stack.
  if (err instanceof ListenError) process.stderr.write(`${err.message}\n`);
  else log.fatal({ err }, 'gateway failed to start');
  process.exit(1);
});

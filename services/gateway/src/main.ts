// Process entry point: config, logger, gateway, signals. Exit codes: 0 clean stop,
// 78 invalid config (EX_CONFIG), 1 anything else.
import { type Config, ConfigError, loadConfig } from './config.js';
import { startGateway } from './gateway.js';
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
      (err: Error) => {
        log.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
}
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

starting.catch((err: Error) => {
  log.fatal({ err: err.message }, 'gateway failed to start');
  process.exit(1);
});

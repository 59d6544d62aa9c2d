// loadConfig and SETTINGS: documented defaults, frozen result, one-line ConfigErrors naming the bad variable,
// and everything derived from the one spec per setting.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { ANY_ORIGIN, CONFIG_VARIABLES, ConfigError, SETTINGS, loadConfig } from '../../services/gateway/src/config.js';

const pem = (k: { publicKey: { export(o: { type: 'spki'; format: 'pem' }): string | Buffer } }): string =>
  k.publicKey.export({ type: 'spki', format: 'pem' }).toString();
/** Keys the gateway refuses: RSA too short to trust, and a type it pins no algorithm for. */
const SMALL_RSA_PEM = pem(generateKeyPairSync('rsa', { modulusLength: 1024 }));
const ED25519_PEM = pem(generateKeyPairSync('ed25519'));
const RSA_PEM = pem(generateKeyPairSync('rsa', { modulusLength: 2048 }));
const EC_PEM = pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }));

type Env = Record<string, string | undefined>;

const DEFAULTS = {
  port: 8080,
  host: '0.0.0.0',
  redisUrl: undefined,
  redisClusterNodes: undefined,
  redisPrefix: 'hubcast:',
  redisTimeoutMs: 2000,
  busProbeIntervalMs: 2000,
  busProbeTimeoutMs: 3000,
  queueMaxBytes: 1048576,
  queueMaxMessages: 256,
  overflowPolicy: 'drop-oldest',
  slowClientEvictMs: 5000,
  pingIntervalMs: 25000,
  maxMessageBytes: 65536,
  maxChannelsPerClient: 128,
  drainMs: 5000,
  closeTimeoutMs: 3000,
  logLevel: 'info',
  authJwtSecret: undefined,
  authPublicKey: undefined,
  authJwksUrl: undefined,
  authAudience: undefined,
  authIssuer: undefined,
  publishApiKey: undefined,
  allowedOrigins: undefined,
  maxConnections: 10000,
  rateLimitPerSec: 1000,
  rateLimitBurst: 2000,
  handshakeTimeoutMs: 10000,
  historySize: 100,
  historyTtlS: 300,
  recoveryMaxMessages: 1000,
  permessageDeflate: false,
  serveClient: true,
};

/** Asserts loadConfig(env) throws a one-line ConfigError for `variable`, and returns it. */
function assertConfigError(env: Env, variable: string): ConfigError {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError for ${JSON.stringify(env)}, got ${String(caught)}`);
  assert.equal(caught.variable, variable);
  assert.equal(caught.name, 'ConfigError');
  assert.ok(caught.message.includes(variable), `message names ${variable}: ${caught.message}`);
  assert.equal(/[\r\n]/.test(caught.message), false, `message is one line: ${JSON.stringify(caught.message)}`);
  return caught;
}

/** Invalid values for every variable; the test below checks this covers all of CONFIG_VARIABLES. */
const INVALID: Record<(typeof CONFIG_VARIABLES)[number], string[]> = {
  PORT: ['70000', '65536', 'abc', '-1', '1.5', '1e3', '0x50', '80a', '+80'],
  HOST: ['my host', 'a/b', 'host!', 'x'.repeat(254)],
  REDIS_URL: ['http://x', 'https://redis.example', 'not a url', 'localhost:6379', 'tcp://localhost:6379'],
  REDIS_CLUSTER_NODES: ['redis-1', 'redis-1:', ':6379', 'a:6379,', 'a:0', 'a:65536', 'redis://a:6379', 'a:6379 b:6379', 'a b:1'],
  REDIS_PREFIX: ['has space', 'tab\there', 'new\nline', 'é', 'x'.repeat(65)],
  REDIS_TIMEOUT_MS: ['49', '60001', 'slow', '-1', '1.5'],
  BUS_PROBE_INTERVAL_MS: ['49', '0', '3600001', 'often'],
  BUS_PROBE_TIMEOUT_MS: ['9', '3600001', 'late', '-1'],
  QUEUE_MAX_BYTES: ['1023', '0', 'big', '-5', String((1 << 30) + 1)],
  QUEUE_MAX_MESSAGES: ['0', '-1', '1000001', 'many', '2.5'],
  OVERFLOW_POLICY: ['drop', 'DROP-OLDEST', 'evict-all', 'none'],
  SLOW_CLIENT_EVICT_MS: ['0', '3600001', 'soon', '-100'],
  PING_INTERVAL_MS: ['99', '0', '3600001', '1s'],
  MAX_MESSAGE_BYTES: ['127', '0', String((64 << 20) + 1), '64k'],
  MAX_CHANNELS_PER_CLIENT: ['0', '100001', 'unlimited'],
  DRAIN_MS: ['-1', '3600001', 'forever', '1.0'],
  CLOSE_TIMEOUT_MS: ['9', '60001', '0', 'never'],
  LOG_LEVEL: ['loud', 'INFO', 'verbose', 'warning'],
  AUTH_JWT_SECRET: ['short', 'x'.repeat(31)],
  AUTH_PUBLIC_KEY: ['not a key', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----', SMALL_RSA_PEM, ED25519_PEM],
  AUTH_JWKS_URL: ['not a url', 'ftp://keys.example/jwks', 'file:///etc/jwks.json'],
  AUTH_AUDIENCE: ['hubcast'],
  AUTH_ISSUER: ['https://issuer.example'],
  PUBLISH_API_KEY: ['short', 'k'.repeat(31)],
  ALLOWED_ORIGINS: ['example.com', 'https://a.example,', 'https://a.example/path', 'ws://a.example', '*,https://a.example', '**'],
  MAX_CONNECTIONS: ['0', '1000001', 'lots'],
  RATE_LIMIT_PER_SEC: ['0', '1000001', '1.5', 'fast'],
  RATE_LIMIT_BURST: ['0', '1000001', 'big'],
  HANDSHAKE_TIMEOUT_MS: ['99', '120001', '10s'],
  HISTORY_SIZE: ['-1', '100001', 'all', '1.5'],
  HISTORY_TTL_S: ['0', '2592001', '5m', '-1'],
  RECOVERY_MAX_MESSAGES: ['0', '100001', 'many'],
  PERMESSAGE_DEFLATE: ['yes', '1', 'TRUE', 'on'],
  SERVE_CLIENT: ['no', '0', 'False', 'off'],
};

describe('loadConfig', () => {
  test('gives the documented defaults for an empty environment', { timeout: 5000 }, () => {
    assert.deepEqual({ ...loadConfig({}) }, DEFAULTS);
  });

  test('an empty value is an error naming the variable (REDIS_PREFIX excepted)', { timeout: 5000 }, () => {
    for (const name of CONFIG_VARIABLES) {
      if (name === 'REDIS_PREFIX') continue; // an empty prefix is a valid choice, covered below
      const err = assertConfigError({ [name]: '' }, name);
      assert.ok(err.message.includes('must not be empty'), err.message);
    }
  });

  test('a blank value, or one with leading or trailing whitespace, is an error naming the variable', { timeout: 5000 }, () => {
    for (const name of CONFIG_VARIABLES) {
      for (const value of ['  ', ' x', 'x ', '\t8080', '8080\n']) assertConfigError({ [name]: value }, name);
    }
    const err = assertConfigError({ PORT: ' 8080' }, 'PORT');
    assert.ok(err.message.includes('whitespace') && err.message.includes('" 8080"'), err.message);
    assertConfigError({ REDIS_URL: ' redis://h ' }, 'REDIS_URL');
  });

  test('a secret with whitespace is refused without echoing it', { timeout: 5000 }, () => {
    const secret = `${'s'.repeat(40)} `;
    for (const name of ['AUTH_JWT_SECRET', 'PUBLISH_API_KEY']) {
      const err = assertConfigError({ [name]: secret }, name);
      assert.equal(err.message.includes('sss'), false, err.message);
    }
  });

  test('a PEM may end with its line break, but not with other whitespace', { timeout: 5000 }, () => {
    assert.ok(RSA_PEM.endsWith('-----\n'));
    assert.equal(loadConfig({ AUTH_PUBLIC_KEY: RSA_PEM }).authPublicKey, RSA_PEM.trimEnd());
    assert.equal(loadConfig({ AUTH_PUBLIC_KEY: RSA_PEM.replace(/\n/g, '\r\n') }).authPublicKey?.includes('END PUBLIC KEY'), true);
    assertConfigError({ AUTH_PUBLIC_KEY: `${RSA_PEM}\n` }, 'AUTH_PUBLIC_KEY');
    assertConfigError({ AUTH_PUBLIC_KEY: `${RSA_PEM.trimEnd()} ` }, 'AUTH_PUBLIC_KEY');
    assertConfigError({ AUTH_PUBLIC_KEY: ` ${RSA_PEM}` }, 'AUTH_PUBLIC_KEY');
  });

  test('returns a frozen object', { timeout: 5000 }, () => {
    const config = loadConfig({});
    assert.ok(Object.isFrozen(config));
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
  });

  test('ignores unrelated variables', { timeout: 5000 }, () => {
    assert.deepEqual({ ...loadConfig({ PATH: '/bin', HOME: '/root', PORTS: 'x' }) }, DEFAULTS);
  });

  test('every variable has invalid cases listed here', { timeout: 5000 }, () => {
    assert.deepEqual(Object.keys(INVALID).sort(), [...CONFIG_VARIABLES].sort());
  });

  for (const name of CONFIG_VARIABLES) {
    test(`an invalid ${name} throws ConfigError naming it`, { timeout: 5000 }, () => {
      for (const value of INVALID[name]) {
        const err = assertConfigError({ [name]: value }, name);
        assert.ok(err.message.startsWith('invalid config: '), err.message);
      }
    });
  }

  test('the error quotes the offending value', { timeout: 5000 }, () => {
    const err = assertConfigError({ PORT: '70000' }, 'PORT');
    assert.ok(err.message.includes('"70000"'), err.message);
    const nl = assertConfigError({ REDIS_PREFIX: 'a\nb' }, 'REDIS_PREFIX');
    assert.ok(nl.message.includes('"a\\nb"'), 'a newline in the value is escaped, keeping one line');
  });

  test('QUEUE_MAX_BYTES below MAX_MESSAGE_BYTES + the 10-byte frame header throws naming QUEUE_MAX_BYTES', { timeout: 5000 }, () => {
    assertConfigError({ QUEUE_MAX_BYTES: '65535' }, 'QUEUE_MAX_BYTES');
    assertConfigError({ QUEUE_MAX_BYTES: '4096', MAX_MESSAGE_BYTES: '4097' }, 'QUEUE_MAX_BYTES');
    // Equal is not enough: the queue holds frames, and a frame adds up to 10 header bytes.
    assertConfigError({ QUEUE_MAX_BYTES: '4105', MAX_MESSAGE_BYTES: '4096' }, 'QUEUE_MAX_BYTES');
    // Raising only MAX_MESSAGE_BYTES past the default queue bound trips the same check.
    assertConfigError({ MAX_MESSAGE_BYTES: String(2 << 20) }, 'QUEUE_MAX_BYTES');
    // The largest frame exactly fitting is accepted.
    const exact = loadConfig({ QUEUE_MAX_BYTES: '4106', MAX_MESSAGE_BYTES: '4096' });
    assert.equal(exact.queueMaxBytes, 4106);
    assert.equal(exact.maxMessageBytes, 4096);
  });

  test('names the first bad variable when several are bad', { timeout: 5000 }, () => {
    assertConfigError({ LOG_LEVEL: 'loud', PORT: 'abc' }, 'PORT');
  });

  test('applies valid overrides', { timeout: 5000 }, () => {
    const config = loadConfig({
      PORT: '9000',
      HOST: '127.0.0.1',
      REDIS_URL: 'redis://redis.internal:6379/2',
      REDIS_PREFIX: 'app:v2:',
      QUEUE_MAX_BYTES: '2097152',
      QUEUE_MAX_MESSAGES: '1000',
      OVERFLOW_POLICY: 'evict',
      SLOW_CLIENT_EVICT_MS: '1',
      PING_INTERVAL_MS: '100',
      MAX_MESSAGE_BYTES: '128',
      MAX_CHANNELS_PER_CLIENT: '1',
      DRAIN_MS: '0',
      CLOSE_TIMEOUT_MS: '10',
      LOG_LEVEL: 'silent',
      REDIS_TIMEOUT_MS: '750',
      BUS_PROBE_INTERVAL_MS: '50',
      BUS_PROBE_TIMEOUT_MS: '10',
    });
    assert.deepEqual(
      { ...config },
      {
        // Every variable not set above keeps its default.
        ...DEFAULTS,
        port: 9000,
        host: '127.0.0.1',
        redisUrl: 'redis://redis.internal:6379/2',
        busProbeIntervalMs: 50,
        busProbeTimeoutMs: 10,
        redisPrefix: 'app:v2:',
        redisTimeoutMs: 750,
        queueMaxBytes: 2097152,
        queueMaxMessages: 1000,
        overflowPolicy: 'evict',
        slowClientEvictMs: 1,
        pingIntervalMs: 100,
        maxMessageBytes: 128,
        maxChannelsPerClient: 1,
        drainMs: 0,
        closeTimeoutMs: 10,
        logLevel: 'silent',
      },
    );
  });

  test('auth: one key source at a time; audience and issuer need one', { timeout: 5000 }, () => {
    const secret = 's'.repeat(32);
    assertConfigError({ AUTH_JWT_SECRET: secret, AUTH_PUBLIC_KEY: RSA_PEM }, 'AUTH_PUBLIC_KEY');
    assertConfigError({ AUTH_JWT_SECRET: secret, AUTH_JWKS_URL: 'https://keys.example/jwks' }, 'AUTH_JWKS_URL');
    assertConfigError({ AUTH_PUBLIC_KEY: EC_PEM, AUTH_JWKS_URL: 'https://keys.example/jwks' }, 'AUTH_JWKS_URL');
    const c = loadConfig({ AUTH_JWT_SECRET: secret, AUTH_AUDIENCE: 'hubcast', AUTH_ISSUER: 'me', PUBLISH_API_KEY: 'k'.repeat(40) });
    assert.deepEqual([c.authJwtSecret, c.authAudience, c.authIssuer, c.publishApiKey], [secret, 'hubcast', 'me', 'k'.repeat(40)]);
    assert.equal(loadConfig({ AUTH_PUBLIC_KEY: RSA_PEM }).authPublicKey?.trim(), RSA_PEM.trim());
    assert.equal(loadConfig({ AUTH_PUBLIC_KEY: EC_PEM }).authPublicKey?.trim(), EC_PEM.trim());
    // A PEM on one line with literal \n, as .env files carry it.
    const oneLine = RSA_PEM.trim().replace(/\n/g, '\\n');
    assert.equal(loadConfig({ AUTH_PUBLIC_KEY: oneLine }).authPublicKey, RSA_PEM.trim());
    assert.equal(loadConfig({ AUTH_JWKS_URL: 'https://keys.example/jwks' }).authJwksUrl, 'https://keys.example/jwks');
  });

  test('limits and origins parse', { timeout: 5000 }, () => {
    const c = loadConfig({
      ALLOWED_ORIGINS: 'https://App.example, http://localhost:3000',
      MAX_CONNECTIONS: '5',
      RATE_LIMIT_PER_SEC: '10',
      RATE_LIMIT_BURST: '20',
      HANDSHAKE_TIMEOUT_MS: '500',
      PERMESSAGE_DEFLATE: 'true',
    });
    assert.deepEqual(c.allowedOrigins, ['https://app.example', 'http://localhost:3000']);
    assert.ok(Object.isFrozen(c.allowedOrigins));
    assert.deepEqual(
      [c.maxConnections, c.rateLimitPerSec, c.rateLimitBurst, c.handshakeTimeoutMs, c.permessageDeflate],
      [5, 10, 20, 500, true],
    );
    assert.equal(loadConfig({ PERMESSAGE_DEFLATE: 'false' }).permessageDeflate, false);
  });

  test('ALLOWED_ORIGINS=* stands alone for every origin', { timeout: 5000 }, () => {
    const c = loadConfig({ ALLOWED_ORIGINS: '*' });
    assert.deepEqual(c.allowedOrigins, [ANY_ORIGIN]);
    assert.ok(Object.isFrozen(c.allowedOrigins));
  });

  test('accepts PORT 0 and the range edges', { timeout: 5000 }, () => {
    assert.equal(loadConfig({ PORT: '0' }).port, 0);
    assert.equal(loadConfig({ PORT: '65535' }).port, 65535);
    assert.equal(loadConfig({ QUEUE_MAX_MESSAGES: '1' }).queueMaxMessages, 1);
    assert.equal(loadConfig({ QUEUE_MAX_MESSAGES: '1000000' }).queueMaxMessages, 1_000_000);
    assert.equal(loadConfig({ QUEUE_MAX_BYTES: String(1 << 30) }).queueMaxBytes, 1 << 30);
    assert.equal(loadConfig({ CLOSE_TIMEOUT_MS: '60000' }).closeTimeoutMs, 60_000);
    assert.equal(loadConfig({ DRAIN_MS: '3600000' }).drainMs, 3_600_000);
  });

  test('accepts redis:// and rediss:// URLs', { timeout: 5000 }, () => {
    assert.equal(loadConfig({ REDIS_URL: 'redis://localhost:6379' }).redisUrl, 'redis://localhost:6379');
    assert.equal(
      loadConfig({ REDIS_URL: 'rediss://user:secret@cache.example.com:6380/0' }).redisUrl,
      'rediss://user:secret@cache.example.com:6380/0',
    );
  });

  test('REDIS_CLUSTER_NODES: seed nodes as host:port; exactly one of it and REDIS_URL', { timeout: 5000 }, () => {
    const c = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,redis-2.internal:7001,[::1]:7002' });
    assert.deepEqual(c.redisClusterNodes, [
      { host: '10.0.0.1', port: 7000 },
      { host: 'redis-2.internal', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    assert.ok(Object.isFrozen(c.redisClusterNodes));
    const err = assertConfigError({ REDIS_URL: 'redis://localhost:6379', REDIS_CLUSTER_NODES: 'a:7000' }, 'REDIS_CLUSTER_NODES');
    assert.ok(err.message.includes('REDIS_URL'), err.message);
  });

  test('accepts every overflow policy and log level', { timeout: 5000 }, () => {
    for (const policy of ['drop-oldest', 'drop-newest', 'evict']) {
      assert.equal(loadConfig({ OVERFLOW_POLICY: policy }).overflowPolicy, policy);
    }
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
      assert.equal(loadConfig({ LOG_LEVEL: level }).logLevel, level);
    }
  });

  test('accepts an empty REDIS_PREFIX and up to 64 printable characters', { timeout: 5000 }, () => {
    assert.equal(loadConfig({ REDIS_PREFIX: '' }).redisPrefix, '');
    const p = '!~'.repeat(32);
    assert.equal(loadConfig({ REDIS_PREFIX: p }).redisPrefix, p);
  });

  test('accepts host names and IPv6 addresses', { timeout: 5000 }, () => {
    for (const host of ['localhost', '::', '::1', 'gateway-1.internal', '10.0.0.1']) {
      assert.equal(loadConfig({ HOST: host }).host, host);
    }
  });
});

describe('SETTINGS: one spec per setting', () => {
  test('CONFIG_VARIABLES is every spec entry, in order, each once', { timeout: 5000 }, () => {
    assert.deepEqual(CONFIG_VARIABLES, Object.values(SETTINGS).map((s) => s.variable));
    assert.equal(new Set(CONFIG_VARIABLES).size, CONFIG_VARIABLES.length);
    for (const name of CONFIG_VARIABLES) assert.match(name, /^[A-Z][A-Z0-9_]*$/);
  });

  test('loadConfig({}) has exactly the spec keys, each at its spec default', { timeout: 5000 }, () => {
    const config = loadConfig({}) as unknown as Record<string, unknown>;
    assert.deepEqual(Object.keys(config), Object.keys(SETTINGS));
    for (const [key, spec] of Object.entries(SETTINGS)) assert.deepEqual(config[key], spec.fallback, key);
  });

  test('every entry has a meaning, and its default passes its own parser', { timeout: 5000 }, () => {
    for (const spec of Object.values(SETTINGS)) {
      assert.ok(spec.meaning.length > 0, spec.variable);
      if (spec.fallback !== undefined) {
        assert.deepEqual(loadConfig({ [spec.variable]: String(spec.fallback) }), loadConfig({}), spec.variable);
      }
    }
  });

  test('a setting read from the environment lands under its spec key', { timeout: 5000 }, () => {
    assert.equal(loadConfig({ [SETTINGS.drainMs.variable]: '1234' }).drainMs, 1234);
    assert.equal(loadConfig({ [SETTINGS.authIssuer.variable]: 'me', AUTH_JWT_SECRET: 's'.repeat(32) }).authIssuer, 'me');
  });
});

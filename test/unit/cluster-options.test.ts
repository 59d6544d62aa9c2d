// `npm run cluster`'s flags (both spellings, unknown ones refused, every port, 0 for a free one)
// and the gateway settings it passes on from its environment.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CONFIG_VARIABLES } from '../../services/gateway/src/config.js';
import { USAGE, gatewaySettings, parseClusterArgs } from '../../tools/cluster/src/options.js';
import { parseFlags } from '../../tools/kit/src/flags.js';

const DEFAULTS = { gateways: 3, lbPort: 8080, statsPort: 8404, prometheusPort: 9090, redisPort: 6390, gatewayPort: 8080, redisCluster: false };

function run(argv: string[]): typeof DEFAULTS {
  const parsed = parseClusterArgs(argv);
  assert.equal(parsed.kind, 'run', JSON.stringify(parsed));
  return (parsed as { args: typeof DEFAULTS }).args;
}

function error(argv: string[]): string {
  const parsed = parseClusterArgs(argv);
  assert.equal(parsed.kind, 'error', JSON.stringify(parsed));
  return (parsed as { message: string }).message;
}

describe('kit flags', () => {
  const spec = { name: 'string', quick: 'boolean' } as const;

  test('--name=value and --name value give the same value; booleans take none', () => {
    for (const argv of [['--name=x', '--quick'], ['--name', 'x', '--quick'], ['--quick', '--name', 'x']]) {
      const r = parseFlags(argv, spec);
      assert.ok(r.ok);
      assert.deepEqual([...r.flags.values], argv[0] === '--quick' ? [['quick', true], ['name', 'x']] : [['name', 'x'], ['quick', true]]);
    }
  });

  test('positional arguments are kept in order, and everything after --', () => {
    const r = parseFlags(['a', '--name', 'x', 'b', '--', '--quick'], spec);
    assert.ok(r.ok);
    assert.deepEqual(r.flags.positional, ['a', 'b', '--quick']);
    assert.equal(r.flags.values.has('quick'), false);
  });

  test('unknown flags, missing values and values given to booleans are errors', () => {
    const cases: [string[], string][] = [
      [['--nmae=x'], 'unknown flag --nmae'],
      [['-n'], 'unknown flag -n'],
      [['--toString'], 'unknown flag --toString'],
      [['--name'], '--name needs a value'],
      [['--name='], '--name needs a value'],
      [['--name', '--quick'], '--name needs a value'],
      [['--quick=yes'], '--quick takes no value'],
    ];
    for (const [argv, message] of cases) assert.deepEqual(parseFlags(argv, spec), { ok: false, error: message }, argv.join(' '));
  });
});

describe('npm run cluster: flags', () => {
  test('no flags: the documented defaults', () => {
    assert.deepEqual(run([]), DEFAULTS);
  });

  test('--gateways=5 and --gateways 5 both start five (the first was silently ignored once)', () => {
    assert.equal(run(['--gateways=5']).gateways, 5);
    assert.equal(run(['--gateways', '5']).gateways, 5);
  });

  test('every port has its flag, in both spellings; 0 asks for a free one', () => {
    assert.deepEqual(run(['--port=1', '--stats-port', '2', '--prometheus-port=3', '--redis-port', '4', '--gateway-port=5']), {
      gateways: 3,
      lbPort: 1,
      statsPort: 2,
      prometheusPort: 3,
      redisPort: 4,
      gatewayPort: 5,
      redisCluster: false,
    });
    assert.deepEqual(run(['--port=0', '--stats-port=0', '--prometheus-port=0', '--redis-port=0', '--gateway-port=0']), {
      gateways: 3,
      lbPort: 0,
      statsPort: 0,
      prometheusPort: 0,
      redisPort: 0,
      gatewayPort: 0,
      redisCluster: false,
    });
  });

  test('--redis-cluster asks for a six-node Redis Cluster; it takes no value', () => {
    assert.equal(run(['--redis-cluster']).redisCluster, true);
    assert.equal(run(['--gateways', '2', '--redis-cluster']).gateways, 2);
    assert.equal(error(['--redis-cluster=yes']), '--redis-cluster takes no value');
  });

  test('bad values are refused, each with a line naming the flag', () => {
    assert.match(error(['--gateways=0']), /--gateways must be an integer from 1 to 32/);
    assert.match(error(['--gateways', '33']), /--gateways/);
    assert.match(error(['--gateways=2.5']), /--gateways/);
    assert.match(error(['--port=65536']), /--port must be a port from 0 to 65535/);
    assert.match(error(['--redis-port', '-1']), /--redis-port must be a port/);
    assert.match(error(['--stats-port=80x']), /--stats-port must be a port/);
  });

  test('unknown flags and stray arguments are refused', () => {
    assert.equal(error(['--gateway=5']), 'unknown flag --gateway');
    assert.equal(error(['5']), 'unexpected argument 5');
  });

  test('--help gives the usage line and every flag with its default', () => {
    const parsed = parseClusterArgs(['--help']);
    assert.equal(parsed.kind, 'help');
    const text = (parsed as { text: string }).text;
    assert.ok(text.startsWith(USAGE));
    for (const flag of ['--gateways', '--redis-cluster', '--port', '--stats-port', '--prometheus-port', '--redis-port', '--gateway-port']) {
      assert.match(text, new RegExp(`^  ${flag} `, 'm'), flag);
    }
    for (const port of ['8080', '8404', '9090', '6390']) assert.match(text, new RegExp(`default ${port}`));
  });
});

describe('npm run cluster: gateway settings from its environment', () => {
  test('every gateway variable that is set is passed on, and nothing else', () => {
    const env: Record<string, string> = { PATH: '/bin', HOME: '/root', NODE_OPTIONS: '--x' };
    for (const name of CONFIG_VARIABLES) env[name] = `v-${name}`;
    const { settings, ignored } = gatewaySettings(env, CONFIG_VARIABLES);
    const expected = CONFIG_VARIABLES.filter((n) => !['HOST', 'PORT', 'REDIS_URL', 'REDIS_CLUSTER_NODES'].includes(n));
    assert.deepEqual(Object.keys(settings).sort(), [...expected].sort());
    for (const name of expected) assert.equal(settings[name], `v-${name}`);
    assert.deepEqual(ignored.sort(), ['HOST', 'PORT', 'REDIS_CLUSTER_NODES', 'REDIS_URL']);
  });

  test('ALLOWED_ORIGINS alone', () => {
    assert.deepEqual(gatewaySettings({ ALLOWED_ORIGINS: 'https://a.example', TERM: 'xterm' }, CONFIG_VARIABLES), {
      settings: { ALLOWED_ORIGINS: 'https://a.example' },
      ignored: [],
    });
  });

  test('an empty value is passed on as it is (the gateway refuses it, not the cluster)', () => {
    assert.deepEqual(gatewaySettings({ DRAIN_MS: '' }, CONFIG_VARIABLES).settings, { DRAIN_MS: '' });
  });
});

// The dependency direction is enforced by `npm run lint`: ESLint itself, with the repository's
// eslint.config.js, lints small snippets placed at real paths and must refuse exactly the
// imports that cross a boundary.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

let eslint: ESLint;

/** The no-restricted-imports messages ESLint gives `code` placed at `path`, after failing on any other rule's. */
async function refusals(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${ROOT}${path}`, warnIgnored: true });
  const messages = result!.messages;
  const other = messages.filter((m) => m.ruleId !== 'no-restricted-imports');
  assert.deepEqual(other, [], `${path}: only import rules apply to the snippet`);
  return messages.map((m) => m.message);
}

describe('lint: one-way dependencies', () => {
  before(() => {
    eslint = new ESLint({ cwd: ROOT });
  });

  const OUTSIDE = /imports nothing outside services\/gateway/;
  const TEST = /must not import test\//;
  const SDK = /The SDK imports only its own modules/;
  // Each refusal expected, in order: the gateway importing test/ breaks both rules.
  const refused: [string, string, RegExp[]][] = [
    ['services/gateway/src/hub.ts', "import '../../../tools/kit/src/wait.js';\n", [OUTSIDE]],
    ['services/gateway/src/hub.ts', "export { startGateway } from '../../../tools/kit/src/gateway.js';\n", [OUTSIDE]],
    ['services/gateway/src/main.ts', "import '../../../test/helpers/wait.js';\n", [TEST, OUTSIDE]],
    ['services/gateway/src/bus/redis.ts', "import '../../../../tools/cluster/src/options.js';\n", [OUTSIDE]],
    ['services/gateway/src/bus/redis.ts', "import '../../../package.json';\n", [OUTSIDE]],
    ['services/gateway/src/a/b/c/d.ts', "import '../../../../../x.js';\n", [OUTSIDE]],
    ['services/gateway/src/main.ts', "import '/etc/hubcast.js';\n", [OUTSIDE]],
    ['tools/loadgen/src/bench.ts', "import '../../../test/helpers/redis.js';\n", [TEST]],
    ['tools/kit/src/redis.ts', "export { within } from '../../../test/helpers/wait.js';\n", [TEST]],
    ['tools/cluster/src/main.ts', "import '../../../test/helpers/load.js';\n", [TEST]],
    ['clients/js/src/client.ts', "import 'ws';\n", [SDK]],
    ['clients/js/src/client.ts', "import 'node:events';\n", [SDK]],
    ['clients/js/src/client.ts', "import '../../../services/gateway/src/codes.js';\n", [SDK]],
  ];
  for (const [path, code, expected] of refused) {
    test(`refused in ${path}: ${code.trim()}`, async () => {
      const found = await refusals(path, code);
      assert.equal(found.length, expected.length, `refusals: ${JSON.stringify(found)}`);
      expected.forEach((message, i) => assert.match(found[i]!, message));
    });
  }

  const allowed: [string, string][] = [
    ['services/gateway/src/hub.ts', "import './codes.js';\nimport 'ws';\nimport 'node:net';\n"],
    ['services/gateway/src/bus/redis.ts', "import '../codes.js';\nimport 'ioredis';\nimport './probe.js';\n"],
    ['tools/cluster/src/main.ts', "import '../../../services/gateway/src/config.js';\nimport '../../kit/src/redis.js';\n"],
    ['tools/loadgen/src/servers/ws-ceiling.ts', "import '../../../../services/gateway/src/frame.js';\n"],
    ['test/integration/cluster.test.ts', "import '../../tools/kit/src/redis.js';\nimport '../helpers/wait.js';\nimport '../../services/gateway/src/codes.js';\n"],
    ['test/helpers/redis.ts', "export { startRedis } from '../../tools/kit/src/redis.js';\n"],
    ['clients/js/src/client.ts', "import './backoff.js';\nexport type { Position } from './position.js';\n"],
  ];
  for (const [path, code] of allowed) {
    test(`allowed in ${path}: ${code.trim().replaceAll('\n', ' ')}`, async () => {
      assert.deepEqual(await refusals(path, code), []);
    });
  }
});

// Lint: eslint's and typescript-eslint's recommended rules, a few that guard the hot path, and the
// direction of dependencies: the gateway imports nothing outside services/gateway, and nothing in
// services/ or tools/ imports test/ (test/unit/lint-boundaries.test.ts proves both).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const SOURCES = '{ts,js,mjs,cjs}';

/** No relative import that climbs into a folder named test (the tests may import tools, not the other way). */
const NO_TEST = {
  regex: '^(\\.\\./)+(.*/)?test(/|$)',
  message: 'services/ and tools/ must not import test/: shared helpers belong in tools/kit.',
};

// The core rule matches import strings, not resolved paths, so the gateway's boundary is stated per
// folder depth: a file N folders below services/gateway may climb N folders and no further.
const GATEWAY_MAX_DEPTH = 8;
const gatewayBoundary = Array.from({ length: GATEWAY_MAX_DEPTH + 1 }, (_, depth) => ({
  files: [`services/gateway/${'*/'.repeat(depth)}*.${SOURCES}`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          NO_TEST,
          {
            regex: `^(\\.\\./){${depth + 1}}|^/|^file:`,
            message: 'services/gateway imports nothing outside services/gateway (npm packages only).',
          },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['**/dist/', '**/node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'error',
      eqeqeq: ['error', 'always'],
      'prefer-const': 'error',
    },
  },
  {
    files: [`services/**/*.${SOURCES}`, `tools/**/*.${SOURCES}`],
    rules: { 'no-restricted-imports': ['error', { patterns: [NO_TEST] }] },
  },
  ...gatewayBoundary,
  {
    // The SDK ships with no runtime dependency: it imports only its own modules.
    files: [`clients/js/src/**/*.${SOURCES}`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(?!\\./)|(^|/)\\.\\.(/|$)',
              message: 'The SDK imports only its own modules (./x.js): no runtime dependencies, nothing outside clients/js/src.',
            },
          ],
        },
      ],
    },
  },
);

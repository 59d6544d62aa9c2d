// Builds @hubcast/client: tsc writes the type declarations to dist/, esbuild bundles the SDK
// into one browser ESM file, dist/hubcast.js, exporting HubcastClient (and the rest of index.ts).
// `node clients/js/build.mjs` (or `npm run build:client` at the root) runs both.
/* global process, URL -- a Node script (eslint has no Node globals for .mjs files) */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = fileURLToPath(new URL('.', import.meta.url));
export const ENTRY = `${here}src/index.ts`;
export const BUNDLE = `${here}dist/hubcast.js`;

/** Bundles the SDK into one ESM file (no imports left: the SDK has no runtime dependencies). */
export async function bundle(outfile = BUNDLE) {
  await build({
    entryPoints: [ENTRY],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    // Every evergreen browser and Node 20; private fields and ?? stay as written.
    target: ['es2022'],
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return outfile;
}

/** The .d.ts files, from the SDK's own tsconfig (DOM types, no Node types). */
export function declarations() {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', here], { stdio: 'inherit' });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  declarations();
  await bundle();
}

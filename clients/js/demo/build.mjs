// Puts the demo page and the SDK's browser bundle where the gateway reads them at start (its
// static.ts): dist/services/gateway/static/. `npm run build` runs this after tsc, and so does the
// gateway's Dockerfile, so the gateway imports nothing outside itself and serves only these files.
/* global process, URL -- a Node script (eslint has no Node globals for .mjs files) */
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { bundle } from '../build.mjs';

const ROOT = new URL('../../../', import.meta.url);
export const PAGE = new URL('index.html', import.meta.url);
export const STATIC_DIR = new URL('dist/services/gateway/static/', ROOT);

/** Writes index.html and hubcast.js (and esbuild's source map, which is not served) into dir. */
export async function buildStatic(dir = STATIC_DIR) {
  await mkdir(dir, { recursive: true });
  await bundle(fileURLToPath(new URL('hubcast.js', dir)));
  await copyFile(PAGE, new URL('index.html', dir));
  return dir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildStatic();

// Debian's chromium driven by playwright-core (no browser download): a fresh profile per launch,
// and a page's console errors and uncaught exceptions collected for the test to assert on.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { requireProgram } from './process.js';

export const CHROMIUM = '/usr/bin/chromium';

/** Headless, no sandbox (containers run as root), and nothing that talks to Google or updates itself mid-test. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  readonly context: BrowserContext;
  newPage(): Promise<Page>;
  /** Closes the browser and deletes its profile. */
  close(): Promise<void>;
}

/** Chromium with a fresh --user-data-dir; throws one line naming the package when it is missing. */
export async function launchChromium(): Promise<Browser> {
  requireProgram('chromium');
  const profile = await mkdtemp(join(tmpdir(), 'hubcast-chromium-'));
  // launchPersistentContext is playwright's way to pass --user-data-dir (launch() refuses the flag).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS],
    viewport: { width: 1200, height: 800 },
  });
  return {
    context,
    newPage: () => context.newPage(),
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Every console error and uncaught exception on the page, from now on. The browser's own
 * /favicon.ico request (no page asks for it; the gateway serves no such file) is not the page's.
 */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error' || new URL(msg.location().url || 'about:blank').pathname === '/favicon.ico') return;
    errors.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  return errors;
}

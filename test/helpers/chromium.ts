// Headless Chromium for browser tests: Debian's `chromium` package driven by playwright-core with
// an explicit executablePath (never `npx playwright install`, which downloads a browser).
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_INSTALL_HINT = 'needs headless Chromium: apt-get update && apt-get install -y chromium (the Debian package), or set CHROMIUM_PATH';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** The Chromium binary: $CHROMIUM_PATH when set (and only it), else `chromium` on the PATH. */
export function findChromium(): string | undefined {
  if (process.env.CHROMIUM_PATH) return isExecutable(process.env.CHROMIUM_PATH) ? process.env.CHROMIUM_PATH : undefined;
  const candidates: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    candidates.push(path.join(dir, 'chromium'), path.join(dir, 'chromium-browser'));
  }
  candidates.push('/usr/bin/chromium', '/usr/lib/chromium/chromium');
  return candidates.find(isExecutable);
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * For `t.test(name, { skip: chromiumSkip }, …)`: a reason to skip when Chromium is missing, false
 * when it is there — and false under CI_REQUIRE_ALL=1, so that a missing browser fails in CI.
 */
export const chromiumSkip: string | false = findChromium() || process.env.CI_REQUIRE_ALL ? false : CHROMIUM_INSTALL_HINT;

export async function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error(`Chromium not found: ${CHROMIUM_INSTALL_HINT}`);
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 60_000 });
}

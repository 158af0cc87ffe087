// Builds dist/ when it is missing or older than the sources, so that `npm start` and `latchkey`
// need no separate build step. In an image built with `npm run build` (no TypeScript installed),
// dist/ is used as it is. `ensurePackagesBuilt` does the same for the packages under packages/
// (`npm run build` and `npm test` build them; the server and the CLI never need them).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stamp = path.join(root, 'dist', '.build-stamp');

function newestSource(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

export function ensureBuilt({ quiet = false } = {}) {
  const srcDir = path.join(root, 'src');
  if (!fs.existsSync(srcDir)) return; // a dist-only install
  const sources = Math.max(newestSource(srcDir), ...['tsconfig.json', 'tsconfig.build.json'].map((f) => fs.statSync(path.join(root, f)).mtimeMs));
  const built = fs.existsSync(stamp) ? fs.statSync(stamp).mtimeMs : 0;
  if (built >= sources && fs.existsSync(path.join(root, 'dist', 'server.js'))) return;
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!fs.existsSync(tsc)) {
    if (fs.existsSync(path.join(root, 'dist', 'server.js'))) return;
    throw new Error('dist/ is missing and TypeScript is not installed: run `npm ci` first');
  }
  if (!quiet) process.stderr.write('latchkey: building dist/ …\n');
  buildInto(path.join(root, 'tsconfig.build.json'), path.join(root, 'dist'), tsc);
}

/** Build packages/<name>/dist for every package with sources, when missing or stale. */
export function ensurePackagesBuilt({ quiet = false } = {}) {
  const packages = path.join(root, 'packages');
  if (!fs.existsSync(packages)) return; // an image or a dist-only install: no packages to build
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const name of fs.readdirSync(packages)) {
    const dir = path.join(packages, name);
    const srcDir = path.join(dir, 'src');
    const tsconfig = path.join(dir, 'tsconfig.json');
    if (!fs.existsSync(srcDir) || !fs.existsSync(tsconfig)) continue;
    const dist = path.join(dir, 'dist');
    const stampFile = path.join(dist, '.build-stamp');
    const sources = Math.max(newestSource(srcDir), fs.statSync(tsconfig).mtimeMs);
    const built = fs.existsSync(stampFile) ? fs.statSync(stampFile).mtimeMs : 0;
    if (built >= sources && fs.existsSync(path.join(dist, 'index.js'))) continue;
    if (!fs.existsSync(tsc)) {
      if (fs.existsSync(path.join(dist, 'index.js'))) continue;
      throw new Error(`packages/${name}/dist is missing and TypeScript is not installed: run \`npm ci\` first`);
    }
    if (!quiet) process.stderr.write(`latchkey: building packages/${name}/dist …\n`);
    buildInto(tsconfig, dist, tsc);
  }
}

// Build beside `dist` and swap it in, so that a server or command already running from it (or a
// second build at the same moment) never sees a half-written or missing tree.
function buildInto(tsconfig, dist, tsc) {
  const parent = path.dirname(dist);
  const tmp = path.join(parent, `.dist-build-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    execFileSync(process.execPath, [tsc, '-p', tsconfig, '--outDir', tmp], { stdio: 'inherit', cwd: parent });
    fs.writeFileSync(path.join(tmp, '.build-stamp'), `${new Date().toISOString()}\n`);
    const old = path.join(parent, `.dist-old-${process.pid}`);
    try {
      fs.renameSync(dist, old);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    try {
      fs.renameSync(tmp, dist);
    } catch (err) {
      // another build swapped its tree in first; it is as fresh as ours
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    }
    fs.rmSync(old, { recursive: true, force: true });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureBuilt();
  ensurePackagesBuilt();
}

// What the Docker image runs: `npm run build` output (dist/), started with only the files the
// Dockerfile's runtime stage copies (no src/, no TypeScript), laid out as in the image, and probed
// with the image's own HEALTHCHECK command. No Docker engine is needed for that.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { ROOT, runCli, startServer } from '../helpers/process.js';
import { freePort, tempDir } from '../helpers/runtime.js';

const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
// continuation lines joined, comments dropped
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stages: string[][] = [];
for (const line of instructions) {
  if (/^FROM\s/i.test(line)) stages.push([]);
  stages.at(-1)?.push(line);
}
const runtime = stages.at(-1) ?? [];
// the base image is a build argument (scripts/build-image.sh passes a locally made one); its default
const baseImage = /^ARG BASE_IMAGE=(\S+)/m.exec(dockerfile)?.[1] ?? '';
const resolved = (line: string | undefined) => (line ?? '').replace('${BASE_IMAGE}', baseImage);

t.test('npm run build produced dist/', async (t) => {
  for (const f of ['dist/server.js', 'dist/cli.js']) t.ok(fs.existsSync(path.join(ROOT, f)), `${f} exists`);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
  t.ok(pkg.scripts.build, 'package.json has a build script');
  t.equal(pkg.bin.latchkey, 'bin/latchkey.js', 'the latchkey command is the package bin');
});

t.test('the Dockerfile', async (t) => {
  t.ok(stages.length >= 2, 'multi-stage');
  t.match(resolved(stages[0][0]), /^FROM node:22-slim AS \w+/i, 'builds on node:22-slim');
  t.ok(stages[0].some((l) => /^RUN npm ci\b/.test(l)), 'the builder runs npm ci');
  t.ok(stages[0].some((l) => /^RUN npm run build\b/.test(l)), 'the builder runs npm run build');
  t.match(resolved(runtime[0]), /^FROM node:22-slim\b/i, 'runs on node:22-slim');
  t.ok(runtime.some((l) => /^RUN npm ci --omit=dev\b/.test(l)), 'production dependencies only');
  const user = runtime.filter((l) => /^USER\s/i.test(l)).at(-1);
  t.ok(user && !/^USER\s+(root|0)(:|\s|$)/i.test(user), `a non-root user (${user})`);
  t.ok(runtime.some((l) => /^ENV\b.*\bHOST=0\.0\.0\.0\b/.test(l)), 'HOST=0.0.0.0');
  t.ok(runtime.some((l) => /^ENV\b.*\bDATA_DIR=\/data\b/.test(l)), 'DATA_DIR=/data');
  t.ok(runtime.some((l) => /^VOLUME\b.*\/data\b/.test(l)), '/data is a volume');
  t.ok(runtime.some((l) => /^EXPOSE 3000\b/.test(l)), 'EXPOSE 3000');
  t.ok(runtime.some((l) => /^HEALTHCHECK\b.*\/readyz/.test(l)), 'HEALTHCHECK on /readyz');
  t.ok(runtime.some((l) => /^CMD\b.*dist\/server\.js/.test(l)), 'CMD runs the built server');
  const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const p of ['node_modules', 'dist', 'data', 'keys/kek', '.git', '.tap']) t.ok(ignore.includes(p), `.dockerignore excludes ${p}`);
});

t.test('the built server runs from the files the image holds', async (t) => {
  // lay out /app as the runtime stage's COPY lines do, and /data as its working directory
  const image = tempDir('latchkey-image-');
  const app = path.join(image, 'app');
  const data = path.join(image, 'data');
  fs.mkdirSync(app);
  fs.mkdirSync(data, { mode: 0o700 });
  const copies = runtime.filter((l) => /^COPY\s/i.test(l));
  t.ok(copies.length > 0);
  for (const line of copies) {
    const parts = line.split(/\s+/).slice(1);
    const from = parts.find((p) => p.startsWith('--from='));
    const args = parts.filter((p) => !p.startsWith('--'));
    const dest = path.resolve(app, args.pop()!);
    // what the image lays over its installed dependencies (argon2 compiled in the builder): here
    // the repository's node_modules stand in for them whole
    if (path.relative(app, dest).split(path.sep)[0] === 'node_modules') continue;
    for (const src of args) {
      // from the builder stage: its /app is this repository after `npm run build`
      const source = from ? path.join(ROOT, src.replace(/^\/app\//, '')) : path.join(ROOT, src);
      const target = args.length > 1 || dest.endsWith('/') || line.trim().endsWith('/') ? path.join(dest, path.basename(src)) : dest;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.cpSync(source, target, { recursive: true });
    }
  }
  t.notOk(fs.existsSync(path.join(app, 'src')), 'no sources in the image');
  t.ok(fs.existsSync(path.join(app, 'dist/server.js')) && fs.existsSync(path.join(app, 'migrations')), 'dist/ and migrations/ are copied');
  // `npm ci --omit=dev` cannot run here (no registry): the repository's dependencies stand in
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'), 'dir');

  const port = await freePort();
  const env = { PORT: String(port), DATA_DIR: data, CWD: data, HOST: '127.0.0.1', NODE_ENV: 'production' };
  const server = await startServer(env, { root: app });
  t.teardown(() => server.stop('SIGKILL'));
  t.equal((await fetch(`${server.url}/.well-known/openid-configuration`)).status, 200, 'the built server answers');
  t.ok(fs.existsSync(path.join(data, 'keys/kek')), 'the embedded KEK lands in the data volume (working directory /data)');

  // the image's HEALTHCHECK command, run as Docker would
  const hc = runtime.find((l) => /^HEALTHCHECK\b/.test(l))!;
  const exec = /CMD\s+(\[.*\])\s*$/.exec(hc);
  t.ok(exec, 'HEALTHCHECK uses the exec form');
  const argv = JSON.parse(exec![1]) as string[];
  t.equal(argv[0], 'node', 'with node (no curl in slim images)');
  const probe = (p: number) =>
    promisify(execFile)(process.execPath, argv.slice(1), { env: { PATH: process.env.PATH ?? '', PORT: String(p) } }).then(
      () => 0,
      (err: { code?: number }) => err.code ?? 1,
    );
  t.equal(await probe(port), 0, 'the healthcheck passes on a ready server');
  t.not(await probe(await freePort()), 0, 'and fails where no server answers');

  // the latchkey command from the image (no TypeScript, no src/) goes through the server's socket
  const created = await runCli(['users', 'create', '--email', 'image@example.com', '--password-stdin', '--json'], env, 'image password\n', { root: app });
  t.equal(created.code, 0, created.stderr);
  t.match(JSON.parse(created.stdout), { email: 'image@example.com' });

  t.equal(await server.stop('SIGTERM'), 0);
});

// The Docker image, really built and started: scripts/build-image.sh builds the Dockerfile with
// buildah (chroot isolation, vfs storage, a debootstrap + Node base), then the image's own CMD runs
// in a container (`buildah run`, sharing the host's network) with the image's user, working
// directory and environment. /readyz answers, the image's HEALTHCHECK command passes while the
// server runs and fails once it is gone, and everything runs as the unprivileged `latchkey` user.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT, waitFor } from '../helpers/process.js';
import { freePort } from '../helpers/runtime.js';

const has = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const isRoot = process.getuid?.() === 0;
const skip = !has('buildah') || !has('debootstrap') ? 'needs buildah and debootstrap: apt-get install -y buildah debootstrap' : !isRoot ? 'needs root (buildah with chroot isolation and vfs storage)' : false;

// a first build makes the base (debootstrap) and runs npm ci twice on vfs: minutes, not seconds
// (told to the runner at once: the file's default timeout is 300 s)
if (!skip) t.setTimeout(45 * 60_000);

const exec = promisify(execFile);
const TAG = 'localhost/latchkey:test';
const STORAGE = ['--storage-driver', 'vfs'];
const buildah = async (args: string[]): Promise<string> => (await exec('buildah', [...STORAGE, ...args], { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 })).stdout;
const run = async (ctr: string, env: string[], cmd: string[]): Promise<{ code: number; out: string }> => {
  try {
    const r = await exec('buildah', [...STORAGE, 'run', '--isolation', 'chroot', ...env.flatMap((e) => ['--env', e]), ctr, '--', ...cmd], { encoding: 'utf8', timeout: 60_000 });
    return { code: 0, out: r.stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
};

t.test('the image builds and runs', { skip }, async (t) => {
  const started = Date.now();
  const built = (await exec(path.join(ROOT, 'scripts/build-image.sh'), [TAG], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, REUSE: '1' }, timeout: 40 * 60_000 })).stdout;
  t.comment(`${built.trim().split('\n').join(' | ')} (${Math.round((Date.now() - started) / 1000)} s)`);

  const config = (JSON.parse(await buildah(['inspect', '--type', 'image', TAG])) as { Docker: { config: { User: string; Cmd: string[]; Entrypoint?: string[] | null; WorkingDir: string; Healthcheck?: { Test: string[] } } } }).Docker.config;
  t.equal(config.User, 'latchkey:latchkey', 'the image runs as latchkey');
  t.equal(config.WorkingDir, '/data');
  t.ok(config.Healthcheck?.Test?.[0] === 'CMD', 'a HEALTHCHECK');
  const command = [...(config.Entrypoint ?? []), ...config.Cmd];

  const name = `latchkey-test-${process.pid}`;
  await buildah(['rm', name]).catch(() => ''); // left by an interrupted run
  const ctr = (await buildah(['from', '--name', name, TAG])).trim();
  t.teardown(() => buildah(['rm', ctr]).catch(() => ''));
  const id = await run(ctr, [], ['id', '-u']);
  t.equal(id.out.trim(), '10001', 'commands in the container run as uid 10001');

  const port = await freePort();
  const env = [`PORT=${port}`];
  // the image's CMD, with its environment (HOST=0.0.0.0, DATA_DIR=/data, NODE_ENV=production)
  const server = spawn('buildah', [...STORAGE, 'run', '--isolation', 'chroot', '--env', `PORT=${port}`, ctr, '--', ...command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  server.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  server.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<void>((resolve) => server.on('close', () => resolve()));
  const stop = async (): Promise<void> => {
    if (server.exitCode !== null || server.signalCode !== null) return;
    try {
      process.kill(-server.pid!, 'SIGTERM');
    } catch {
      return;
    }
    await exited;
  };
  t.teardown(stop);

  const ready = await waitFor(async () => {
    if (server.exitCode !== null) throw new Error(`the server exited: ${out}`);
    const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    return r?.status === 200 ? r : undefined;
  }, 180_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${out}`);
  });
  t.equal(ready.status, 200, '/readyz answers 200');
  t.match(out, /"msg":"latchkey ready"/, 'logs are JSON (no terminal)');

  const health = await run(ctr, env, config.Healthcheck!.Test.slice(1));
  t.equal(health.code, 0, `the HEALTHCHECK passes while the server runs ${health.out}`);

  // the server's own process: its uid, from /proc
  const pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  const serverPids = pids.filter((p) => {
    try {
      // buildah resolves the program on the image's PATH (node → /usr/local/bin/node)
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
      return path.basename(argv[0] ?? '') === path.basename(command[0]!) && argv.slice(1).join(' ') === command.slice(1).join(' ') && fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`PORT=${port}`);
    } catch {
      return false;
    }
  });
  t.equal(serverPids.length, 1, 'the server process is found');
  const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(`/proc/${serverPids[0]}/status`, 'utf8'));
  t.same([uid?.[1], uid?.[2]], ['10001', '10001'], 'the server runs as uid 10001 (real and effective), not root');

  // /data is a VOLUME: seen through the server process's own root
  const kek = fs.statSync(`/proc/${serverPids[0]}/root/data/keys/kek`);
  t.equal(kek.uid, 10001, 'the KEK it created in /data belongs to latchkey');
  t.equal(kek.mode & 0o777, 0o600, 'mode 0600');

  // SIGTERM to the server itself (as `docker stop` does); buildah run ends with it
  process.kill(Number(serverPids[0]), 'SIGTERM');
  await exited;
  t.match(out, /shutting down/, 'SIGTERM: a graceful shutdown');
  const after = await run(ctr, env, config.Healthcheck!.Test.slice(1));
  t.not(after.code, 0, 'the HEALTHCHECK fails once the server is gone');
});

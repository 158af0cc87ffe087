// The embedded backend keeps its data under DATA_DIR across restarts, and one process at a time
// opens it: a lock file (O_EXCL, holding the pid) keeps a second server out; a stale one is taken over.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { runCli, startServer, type ServerProcess } from '../helpers/process.js';
import { freePort, tempDir } from '../helpers/runtime.js';

interface Jwks {
  keys: Array<{ kid: string; alg: string }>;
}

const cwd = tempDir('latchkey-persist-cwd-');
// deeper than a socket address can hold (about 107 bytes): the command socket must still work
const dataDir = path.join(tempDir('latchkey-persist-'), 'd'.repeat(60), 'e'.repeat(40), 'data');
const lockFile = path.join(dataDir, 'latchkey.lock');
const socketFile = path.join(dataDir, 'latchkey.sock');
const env = (port: number): Record<string, string> => ({ PORT: String(port), DATA_DIR: dataDir, CWD: cwd });
const running: ServerProcess[] = [];
t.teardown(async () => {
  for (const s of running) await s.stop('SIGKILL');
});

async function start(port?: number): Promise<ServerProcess> {
  const s = await startServer(env(port ?? (await freePort())));
  running.push(s);
  return s;
}

async function kids(s: ServerProcess): Promise<string[]> {
  const jwks = (await (await fetch(`${s.url}/.well-known/jwks.json`)).json()) as Jwks;
  return jwks.keys.map((k) => `${k.alg}:${k.kid}`).sort();
}

function deadPid(): number {
  // a process that has exited: its pid is (for the moment) nobody's
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid!;
}

t.test('data and keys survive a restart; the lock keeps a second server out', async (t) => {
  t.ok(Buffer.byteLength(socketFile) > 108, 'the socket path is longer than sun_path');
  const first = await start();
  t.equal(fs.readFileSync(lockFile, 'utf8').trim(), String(first.proc.pid), 'the lock file holds the server pid');
  t.equal(fs.statSync(lockFile).mode & 0o777, 0o600, 'the lock file is owner-only');
  t.equal(fs.statSync(dataDir).mode & 0o777, 0o700, 'the data directory is owner-only');
  t.ok(fs.existsSync(path.join(cwd, 'keys/kek')), 'the embedded default created keys/kek');
  t.equal(fs.statSync(path.join(cwd, 'keys/kek')).mode & 0o777, 0o600, 'keys/kek is mode 0600');
  const kidsBefore = await kids(first);
  t.ok(kidsBefore.some((k) => k.startsWith('ES256:')) && kidsBefore.some((k) => k.startsWith('RS256:')), 'ES256 and RS256 keys were created');

  const created = await runCli(['users', 'create', '--email', 'persist@example.com', '--name', 'Per Sist', '--password-stdin', '--json'], env(0), 'a long enough password\n');
  t.equal(created.code, 0, `users create through the running server: ${created.stderr}`);
  const user = JSON.parse(created.stdout) as { id: string; email: string };

  // a second server on the same directory refuses, with one clear line, and leaves the first alone
  const second = await startServer(env(await freePort()), { waitReady: false });
  running.push(second);
  const code = await second.exited;
  t.not(code, 0, 'the second server exits non-zero');
  const lines = second.stderr().trim().split('\n');
  t.equal(lines.length, 1, `exactly one line on stderr: ${second.stderr()}`);
  t.match(lines[0], new RegExp(`in use by process ${first.proc.pid}`), 'it names the process holding the directory');
  t.equal(fs.readFileSync(lockFile, 'utf8').trim(), String(first.proc.pid), 'the lock still holds the first server pid');
  t.equal((await fetch(`${first.url}/readyz`)).status, 200, 'the first server is unaffected');

  t.equal(await first.stop('SIGTERM'), 0, 'SIGTERM: exit code 0');
  t.notOk(fs.existsSync(lockFile), 'the lock file is released on shutdown');
  t.notOk(fs.existsSync(socketFile), 'the command socket is removed on shutdown');

  const again = await start();
  t.same(await kids(again), kidsBefore, 'the same signing keys (same kids) after a restart');
  const list = await runCli(['users', 'list', '--json'], env(0));
  t.equal(list.code, 0, list.stderr);
  const users = JSON.parse(list.stdout) as Array<{ id: string; email: string; name: string }>;
  t.match(users, [{ id: user.id, email: 'persist@example.com', name: 'Per Sist' }], 'the user is still there');
  t.equal(await again.stop('SIGTERM'), 0);
});

t.test('a stale lock file from a dead process is taken over', async (t) => {
  const dead = deadPid();
  fs.writeFileSync(lockFile, `${dead}\n`, { mode: 0o600 });
  const s = await start();
  t.equal(fs.readFileSync(lockFile, 'utf8').trim(), String(s.proc.pid), 'the new server holds the lock');
  t.ok((await kids(s)).length >= 2, 'with its keys');
  t.equal(await s.stop('SIGTERM'), 0);

  // the command, with no server running, takes over a stale lock too, and releases it
  fs.writeFileSync(lockFile, `${deadPid()}\n`, { mode: 0o600 });
  const list = await runCli(['users', 'list', '--json'], env(0));
  t.equal(list.code, 0, list.stderr);
  t.equal((JSON.parse(list.stdout) as unknown[]).length, 1);
  t.notOk(fs.existsSync(lockFile), 'the command released the lock it took over');
});

// Every `latchkey` command and its error cases (test/helpers/cli-battery.ts) on Postgres, and on the
// embedded database with a server running: the command is then carried out by the server over its
// owner-only socket, since PGlite admits one process per data directory.
// (The embedded database with no server running is in cli-embedded.test.ts.)
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createDb } from '../../src/db/create-db.js';
import { dropCreatedDatabases, postgres, postgresOnly } from '../helpers/backends.js';
import { checkDatabase, commands, embeddedSetting, type Setting } from '../helpers/cli-battery.js';
import { startServer, type ServerProcess } from '../helpers/process.js';
import { freePort, tempDir } from '../helpers/runtime.js';

// every command is a process of its own (and here PGlite opens); room for a busy machine
t.setTimeout(480_000);

t.teardown(dropCreatedDatabases);

t.test('on Postgres', { skip: postgresOnly }, async (t) => {
  const url = await postgres.create();
  const cwd = tempDir('latchkey-cli-cwd-');
  // no LATCHKEY_KEK: user and client commands do not need it
  const setting: Setting = {
    env: { DATABASE_URL: url, CWD: cwd },
    concurrent: true,
    allErrorCases: true,
    async withDb(fn) {
      const dbh = await createDb({ databaseUrl: url, dataDir: cwd });
      try {
        return await fn(dbh.db);
      } finally {
        await dbh.close();
      }
    },
  };
  const written = await commands(t, setting);
  await setting.withDb((db) => checkDatabase(t, db, written));
  t.notOk(fs.existsSync(path.join(cwd, 'keys')), 'no KEK file was created for postgres://');
});

t.test('on the embedded database, through a running server', async (t) => {
  const cwd = tempDir('latchkey-cli-cwd-');
  const dataDir = path.join(tempDir('latchkey-cli-'), 'data');
  const setting = embeddedSetting(dataDir, cwd, true);
  let server: ServerProcess | undefined = await startServer({ PORT: String(await freePort()), DATA_DIR: dataDir, CWD: cwd });
  t.teardown(() => server?.stop('SIGKILL'));
  const lockFile = path.join(dataDir, 'latchkey.lock');
  t.equal(fs.readFileSync(lockFile, 'utf8').trim(), String(server.proc.pid), 'the server holds the data directory');
  t.equal(fs.statSync(path.join(dataDir, 'latchkey.sock')).mode & 0o777, 0o600, 'its command socket is owner-only');

  const written = await commands(t, setting);
  // the commands could only succeed through the socket: the data directory stayed the server's
  t.equal(fs.readFileSync(lockFile, 'utf8').trim(), String(server.proc.pid), 'the lock still holds the server pid');
  t.equal((await fetch(`${server.url}/readyz`)).status, 200, 'the server is still ready');

  t.equal(await server.stop('SIGTERM'), 0, 'the server stops cleanly');
  server = undefined;
  await setting.withDb((db) => checkDatabase(t, db, written));
});


t.test('a key id beginning with "-" is an argument, not an option', async (t) => {
  const { parseCommand } = await import('../../src/cli/registry.js');
  const kid = '-r3xK9_abcdefghijklmnopqrstuvwxyz0123456789';
  t.same(parseCommand(['keys', 'revoke', kid]).positionals, [kid]);
  const p = parseCommand(['keys', 'revoke', '--reason', '-short-reason', kid]);
  t.same(p.positionals, [kid], 'after an option with a value');
  t.equal(p.values.reason, '-short-reason', 'a string option keeps its value, even one beginning with "-"');
  t.same(parseCommand(['keys', 'revoke', kid, '--json']).positionals, [kid], 'before --json');
  t.same(parseCommand(['keys', 'revoke', '--', kid]).positionals, [kid], 'after "--" as before');
  t.throws(() => parseCommand(['keys', 'revoke', '--bogus', kid]), /Unknown option '--bogus'/, 'an unknown option is still refused');
  t.throws(() => parseCommand(['keys', 'revoke', '-x']), /Unknown option '-x'/, 'so is a short unknown one');
});

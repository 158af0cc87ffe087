// Every `latchkey` command (test/helpers/cli-battery.ts) on the embedded database with no server
// running: each command opens the data directory itself, under its lock, and releases it.
// Each command opening PGlite costs seconds, so this runs one error case of each kind; the full
// list runs on Postgres and through a running server (cli.test.ts), the same code past the transport.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { checkDatabase, commands, embeddedSetting, refused } from '../helpers/cli-battery.js';
import { runCli } from '../helpers/process.js';
import { tempDir } from '../helpers/runtime.js';

// every command is a process of its own (and here PGlite opens); room for a busy machine
t.setTimeout(480_000);

t.test('on the embedded database, no server running', async (t) => {
  const cwd = tempDir('latchkey-cli-cwd-');
  const dataDir = path.join(tempDir('latchkey-cli-'), 'data');
  const setting = embeddedSetting(dataDir, cwd, false);
  const written = await commands(t, setting);
  t.notOk(fs.existsSync(path.join(dataDir, 'latchkey.lock')), 'each command released the data directory');
  await setting.withDb((db) => checkDatabase(t, db, written));

  // held by a live process without a socket: the command refuses, and leaves the lock alone
  fs.writeFileSync(path.join(dataDir, 'latchkey.lock'), `${process.pid}\n`);
  const held = await runCli(['users', 'list'], setting.env);
  refused(t, held, 'data directory held by another live process', new RegExp(`in use by process ${process.pid}`));
  t.equal(fs.readFileSync(path.join(dataDir, 'latchkey.lock'), 'utf8').trim(), String(process.pid), 'the lock is left to its holder');
  fs.unlinkSync(path.join(dataDir, 'latchkey.lock'));
});

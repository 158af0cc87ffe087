// Configuration is read and validated once at boot: a wrong value stops the built server with a
// non-zero exit and exactly one line on stderr naming the variable. So does a missing or wrong KEK.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { startServer } from '../helpers/process.js';
import { freePort, tempDir } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

const newKek = (): string => crypto.randomBytes(32).toString('base64');

/** Start the built server expecting it to refuse; returns its stderr lines. */
async function refusedStart(env: Record<string, string>): Promise<{ code: number | null; lines: string[]; stdout: string }> {
  const s = await startServer({ PORT: String(await freePort()), ...env }, { waitReady: false });
  const code = await s.exited;
  return { code, lines: s.stderr().split('\n').filter((l) => l !== ''), stdout: s.stdout() };
}

t.test('a wrong value stops the start with one line naming the variable', async (t) => {
  const cases: Array<[string, string]> = [
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['ISSUER', 'http://example.com'],
    ['ISSUER', 'not a url'],
    ['DATABASE_URL', 'mysql://x'],
    ['LATCHKEY_KEK', 'short'],
    ['SIGNING_ALG', 'HS256'],
    ['SIGNING_ALG', 'none'],
    ['TRUST_PROXY', 'garbage'],
    ['LOG_LEVEL', 'loud'],
    ['PG_PREPARED_STATEMENTS', 'maybe'],
  ];
  await Promise.all(
    cases.map(async ([name, value]) => {
      const cwd = tempDir('latchkey-config-');
      const r = await refusedStart({ [name]: value, DATA_DIR: path.join(cwd, 'data'), CWD: cwd });
      t.not(r.code, 0, `${name}=${value}: non-zero exit`);
      t.equal(r.lines.length, 1, `${name}=${value}: exactly one line on stderr (${JSON.stringify(r.lines)})`);
      t.match(r.lines[0], new RegExp(`\\b${name}\\b`), `${name}=${value}: the line names ${name}`);
      t.notMatch(r.lines[0], /\bat .*\(.*:\d+:\d+\)/, `${name}=${value}: no stack trace`);
      t.equal(r.stdout, '', `${name}=${value}: nothing on stdout`);
      t.notOk(fs.existsSync(path.join(cwd, 'data')), `${name}=${value}: nothing was created`);
    }),
  );
});

t.test('postgres:// without a KEK stops the start', async (t) => {
  // the KEK is checked before any connection is made, so no server needs to listen here
  const cwd = tempDir('latchkey-config-');
  const r = await refusedStart({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere', CWD: cwd });
  t.not(r.code, 0);
  t.equal(r.lines.length, 1, JSON.stringify(r.lines));
  t.match(r.lines[0], /LATCHKEY_KEK/, 'names LATCHKEY_KEK');
  t.match(r.lines[0], /kek generate/, 'says how to get one');
  t.notOk(fs.existsSync(path.join(cwd, 'keys')), 'no KEK is generated for postgres://');
});

t.test('LATCHKEY_KEK_FILE that cannot be read stops the start', async (t) => {
  const cwd = tempDir('latchkey-config-');
  const r = await refusedStart({ DATABASE_URL: 'memory:', LATCHKEY_KEK_FILE: path.join(cwd, 'missing'), CWD: cwd });
  t.not(r.code, 0);
  t.equal(r.lines.length, 1, JSON.stringify(r.lines));
  t.match(r.lines[0], /LATCHKEY_KEK_FILE/);
});

for (const backend of backends()) {
  t.test(`a KEK other than the one that sealed the keys stops the start (${backend.name})`, async (t) => {
    const cwd = tempDir('latchkey-kek-');
    const dataDir = path.join(cwd, 'data');
    const kekFile = path.join(cwd, 'keys/kek');
    // on Postgres the KEK must be given; on the embedded default it is keys/kek, made on first start
    const db: Record<string, string> = backend.name === 'postgres' ? { DATABASE_URL: await backend.create(), LATCHKEY_KEK: newKek() } : { DATA_DIR: dataDir };

    const first = await startServer({ PORT: String(await freePort()), CWD: cwd, ...db });
    t.equal(await first.stop('SIGTERM'), 0);

    const r = await refusedStart({ CWD: cwd, ...db, LATCHKEY_KEK: newKek() });
    t.not(r.code, 0, 'another LATCHKEY_KEK: non-zero exit');
    t.equal(r.lines.length, 1, `one line on stderr: ${JSON.stringify(r.lines)}`);
    t.match(r.lines[0], /LATCHKEY_KEK/, 'the line names the KEK');
    t.match(r.lines[0], /decrypt/, 'and says it cannot decrypt the stored keys');
    if (backend.name === 'pglite') {
      t.notOk(fs.existsSync(path.join(dataDir, 'latchkey.lock')), 'the data directory lock is released');

      t.ok(fs.existsSync(kekFile), 'keys/kek was created in the working directory');
      const original = fs.readFileSync(kekFile);
      fs.writeFileSync(kekFile, `${newKek()}\n`);
      const r2 = await refusedStart({ CWD: cwd, ...db });
      t.not(r2.code, 0, 'another keys/kek: non-zero exit');
      t.equal(r2.lines.length, 1, JSON.stringify(r2.lines));
      t.ok(r2.lines[0].includes(`KEK file ${kekFile}`), 'the line names the KEK file')
      t.match(r2.lines[0], /decrypt/);
      fs.writeFileSync(kekFile, original);
    } else {
      t.notOk(fs.existsSync(kekFile), 'no KEK file is ever made for postgres://');
    }

    const again = await startServer({ PORT: String(await freePort()), CWD: cwd, ...db });
    t.equal((await fetch(`${again.url}/readyz`)).status, 200, 'the right KEK still opens the keys');
    t.equal(await again.stop('SIGTERM'), 0);
  });
}

// Output for people: CLI lists as aligned tables with a header on a terminal (`--json` and piped
// output unchanged), logs pretty on a terminal or with LOG_FORMAT=pretty (JSON otherwise), and the
// ready message of the server (issuer, database, next step). A terminal is a real pty, from
// util-linux's `script`.
import crypto from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { loginAndRedeem } from '../helpers/flow.js';
import { ROOT, runCli, startServer, waitFor } from '../helpers/process.js';
import { freePort, tempDir } from '../helpers/runtime.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { formatTable, runCommand } from '../../src/cli/registry.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const SCRIPT_SKIP = hasScript ? false : 'needs util-linux `script` for a pty (apt-get install bsdutils)';

/** Run a command line in a pty; resolves with what the terminal showed (CRLF → LF). */
function inPty(command: string, env: Record<string, string>, until?: (out: string) => boolean): Promise<{ out: string; stop: () => void; done: Promise<void> }> {
  const proc = spawn('script', ['-qefc', command, '/dev/null'], { cwd: env.CWD ?? ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', TERM: 'dumb', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString('utf8').replace(/\r\n/g, '\n')));
  const done = new Promise<void>((resolve) => proc.on('close', () => resolve()));
  const result = { get out() { return out; }, stop: () => proc.kill('SIGTERM'), done };
  if (!until) return done.then(() => result);
  return waitFor(async () => (until(out) ? result : undefined), 120000).catch((err: Error) => {
    proc.kill('SIGKILL');
    throw new Error(`${err.message}; the terminal showed:\n${out}`);
  });
}

t.test('formatTable aligns columns under a header', async (t) => {
  const text = formatTable([{ a: 'x', b: ['p', 'q'], c: null }, { a: 'longer', b: [], c: 'z\nw' }], ['a', 'b', 'c']);
  t.equal(text, ['A       B    C', 'x       p,q  -', 'longer  -    z w'].join('\n'));
  t.equal(formatTable([], ['a']), '(none)');
});

for (const backend of backends()) {
  t.test(`list commands as tables (${backend.name})`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const userId = await createUser(e.rt, 'tab@example.com', 'tab password 1');
    const app = await createClient(e.rt, ['--name', 'Table app', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid offline_access']);
    await loginAndRedeem({ issuer: e.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'tab@example.com', password: 'tab password 1', scope: 'openid offline_access' });
    const ctx = cliContextFor(e.rt);
    const run = async (argv: string[]) => {
      const r = await runCommand(argv, ctx, undefined);
      t.equal(r.code, 0, `${argv.join(' ')} ${r.stderr}`);
      return r.stdout;
    };
    const cases: Array<[string[], string[], string]> = [
      [['users', 'list'], ['ID', 'EMAIL', 'NAME', 'EMAIL_VERIFIED', 'DISABLED', 'CREATED_AT'], 'tab@example.com'],
      [['clients', 'list'], ['CLIENT_ID', 'NAME', 'TYPE', 'GRANT_TYPES', 'SCOPES', 'REDIRECT_URIS', 'CREATED_AT'], app.clientId],
      [['sessions', 'list', '--user', 'tab@example.com'], ['ID', 'USER_ID', 'CLIENT_ID', 'SCOPE', 'LAST_USED_AT', 'IDLE_EXPIRES_AT', 'REVOKED_AT', 'REVOKED_REASON'], userId],
      [['keys', 'list'], ['KID', 'ALG', 'STATE', 'PUBLISHED_AT', 'ACTIVATED_AT', 'RETIRED_AT', 'EXPIRES_AT', 'PROMOTABLE_AT'], 'ES256'],
      [['audit'], ['AT', 'TYPE', 'ACTOR', 'USER_ID', 'CLIENT_ID', 'IP', 'DETAILS'], 'login.success'],
    ];
    for (const [argv, header, expected] of cases) {
      const table = (await run([...argv, '--table'])).trimEnd().split('\n');
      t.same(table[0]!.split(/\s{2,}/), header, `${argv.join(' ')}: the header`);
      t.ok(table.length >= 2 && table.slice(1).some((l) => l.includes(expected)), `${argv.join(' ')}: the rows`);
      // every column starts where its header starts (the second column on every row)
      const second = table[0]!.indexOf(header[1]!);
      for (const row of table.slice(1)) t.match(row.slice(second - 2, second), /^ {2}$/, `${argv.join(' ')}: aligned`);
      const json = await run([...argv, '--json']);
      t.ok(Array.isArray(JSON.parse(json)), `${argv.join(' ')} --json: unchanged`);
      const plain = await run(argv);
      t.notOk(plain.startsWith(header[0]!), `${argv.join(' ')}: piped, the key: value text as before`);
    }
  });
}

t.test('on a terminal: tables by default, --json unchanged', { skip: SCRIPT_SKIP }, async (t) => {
  const cwd = tempDir('latchkey-tty-');
  const env = { CWD: cwd, DATA_DIR: path.join(cwd, 'data') };
  t.equal((await runCli(['users', 'create', '--email', 'tty@example.com', '--password-stdin', '--json'], env, 'tty password 1\n')).code, 0);
  const cli = path.join(ROOT, 'bin/latchkey.js');
  const table = await inPty(`${process.execPath} ${cli} users list`, env);
  t.match(table.out, /^ID\s+EMAIL\s+NAME\s+EMAIL_VERIFIED\s+DISABLED\s+CREATED_AT\n/m, 'a header');
  t.match(table.out, /tty@example\.com\s+-\s+false\s+false/, 'an aligned row');
  const json = await inPty(`${process.execPath} ${cli} users list --json`, env);
  t.equal((JSON.parse(json.out.trim()) as Array<{ email: string }>)[0]!.email, 'tty@example.com', '--json as before');
  const piped = await runCli(['users', 'list'], env);
  t.match(piped.stdout, /^id: /, 'piped: as before');
});

t.test('server output: JSON when piped, pretty with LOG_FORMAT=pretty, the ready message', async (t) => {
  const marker = `mk${crypto.randomBytes(8).toString('hex')}`;
  const port = await freePort();
  const json = await startServer({ PORT: String(port), DATABASE_URL: 'memory:', CWD: tempDir('latchkey-out-') });
  t.teardown(() => json.stop('SIGKILL'));
  await (await fetch(`${json.url}/no-such?code=${marker}`)).arrayBuffer();
  await waitFor(async () => (json.stdout().includes('"statusCode":404') ? true : undefined));
  t.equal(await json.stop('SIGTERM'), 0);
  const lines = json.stdout().split('\n').filter(Boolean);
  t.ok(lines.every((l) => JSON.parse(l)), 'every line is JSON');
  const ready = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'latchkey ready')!;
  t.equal(ready.issuer, `http://localhost:${port}`);
  t.equal(ready.database, 'pglite');
  t.match(ready.next, [/latchkey users create/, /latchkey clients create/], 'the next steps, on a fresh database');
  // the access line (written without pino's redaction pass: its fields are whitelisted)
  const access = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request completed')!;
  t.match(access, { level: 30, reqId: /^req-/, req: { method: 'GET', url: '/no-such?code=[redacted]', remoteAddress: '127.0.0.1' }, res: { statusCode: 404 }, responseTime: Number }, 'one line per request: method, redacted URL, address, status, time');
  t.same(Object.keys(access.req as object).sort(), ['method', 'remoteAddress', 'url'], 'no other request field (no headers)');
  t.same(Object.keys(access.res as object), ['statusCode'], 'no reply header');
  t.notOk(json.stdout().includes(marker), 'the query value is nowhere');

  const port2 = await freePort();
  const pretty = await startServer({ PORT: String(port2), DATABASE_URL: 'memory:', LOG_FORMAT: 'pretty', CWD: tempDir('latchkey-out-'), METRICS_PORT: '0' });
  t.teardown(() => pretty.stop('SIGKILL'));
  await (await fetch(`${pretty.url}/no-such?code=${marker}`)).arrayBuffer();
  await waitFor(async () => (pretty.stdout().includes('request completed') ? true : undefined));
  t.equal(await pretty.stop('SIGTERM'), 0);
  const out = pretty.stdout();
  t.notOk(out.split('\n').some((l) => l.startsWith('{')), 'no JSON line');
  t.match(out, /INFO.*request completed/, 'readable log lines');
  t.match(out, /code=\[redacted\]/, 'redacted as in JSON');
  t.notOk(out.includes(marker), 'no secret');
  t.match(out, new RegExp(`Latchkey is ready: http://localhost:${port2}`), 'the issuer URL');
  t.match(out, /database: +embedded PGlite, in memory/, 'the database');
  t.match(out, /metrics: +http:\/\/127\.0\.0\.1:\d+\/metrics/, 'the metrics listener');
  t.match(out, /Next: create a user and a client[\s\S]*npx latchkey users create[\s\S]*npx latchkey clients create/, 'the next step');
});

t.test('on a terminal the server is pretty without LOG_FORMAT', { skip: SCRIPT_SKIP }, async (t) => {
  const port = await freePort();
  const env = { PORT: String(port), DATABASE_URL: 'memory:', CWD: tempDir('latchkey-tty-server-') };
  const run = await inPty(`${process.execPath} ${path.join(ROOT, 'dist/server.js')}`, env, (out) => out.includes('Next: create a user'));
  t.match(run.out, new RegExp(`Latchkey is ready: http://localhost:${port}`));
  t.notOk(run.out.split('\n').some((l) => l.startsWith('{"level"')), 'no JSON line on a terminal');
  run.stop();
  await run.done;
});

// `npm run bench:status`: the Token Status List figures on their own (issue 12), on a fresh
// Postgres database, Latchkey started as `npm start` runs it (LOG_LEVEL=info) except for
// STATUS_LIST_TTL=2 (to keep the run short; the window scales with it). `npm run bench` runs the
// same measurement. Options: --revocations 100 --duration 5 --ttl 2 --pg postgres://…:5432
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { discover, type ClientCreds, type Target } from './lib/oauth.js';
import { freePort, installCleanup, runToCompletion, startChild, stopAll, waitFor200 } from './lib/procs.js';
import { measureStatusLists, statusListSection } from './workloads/status-list.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    revocations: { type: 'string', default: '100' },
    duration: { type: 'string', default: '5' },
    ttl: { type: 'string', default: '2' },
    pg: { type: 'string', default: process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432' },
    out: { type: 'string', default: path.join('bench', 'RESULTS-status-list.md') },
  },
});
const PG_BASE = args.pg.replace(/\/+$/, '');
if (!/^postgres(ql)?:\/\/([^@/]*@)?(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(PG_BASE)) throw new Error('--pg must be a loopback postgres:// URL without a database');
const DB = 'latchkey_bench_status';
const RESOURCE = 'https://api.example';

async function admin(sqlText: string): Promise<void> {
  const c = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
  await c.connect();
  try {
    await c.query(sqlText);
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  installCleanup(async () => stopAll());
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB}`);
  const kek = crypto.randomBytes(32).toString('base64');
  const databaseUrl = `${PG_BASE}/${DB}`;
  const env = { DATABASE_URL: databaseUrl, LATCHKEY_KEK: kek, LATCHKEY_KEK_FILE: '', STATUS_LIST_TTL: args.ttl };
  const cli = async (argv: string[]) => JSON.parse(await runToCompletion([path.join(ROOT, 'dist', 'cli.js'), ...argv, '--json'], env, ROOT)) as Record<string, unknown>;
  await runToCompletion([path.join(ROOT, 'dist', 'cli.js'), 'migrate'], env, ROOT);
  const clients: ClientCreds[] = [];
  for (let i = 0; i < 10; i++) {
    const c = await cli(['clients', 'create', '--name', `bench-status-${i}`, '--grant-types', 'client_credentials', '--scopes', 'api:read', '--audiences', RESOURCE]);
    clients.push({ id: String(c.client_id), secret: String(c.client_secret) });
  }
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const child = startChild('latchkey', [path.join(ROOT, 'dist', 'server.js')], { ...env, PORT: String(port), HOST: '127.0.0.1', ISSUER: issuer }, { cwd: ROOT });
  await waitFor200(child, `${issuer}/readyz`, t0);
  const { endpoints, metadata } = await discover(issuer);
  const target: Target = {
    name: 'latchkey',
    issuer,
    pid: child.pid,
    endpoints,
    metadata,
    user: { email: '', password: '' },
    clients: { cc: clients[0]!, web: clients[0]!, ui: clients[0]! },
    redirectUri: '',
    resource: RESOURCE,
    scopes: { cc: 'api:read', web: '', ui: '' },
    introspectResource: undefined,
  };
  process.stderr.write(`status lists: ${args.revocations} revocations at STATUS_LIST_TTL=${args.ttl} …\n`);
  const r = await measureStatusLists(target, clients, Number(args.ttl), Number(args.revocations), Number(args.duration) * 1000);
  await stopAll();
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  const section = `${statusListSection(r)}\n\nLatchkey at its defaults (LOG_LEVEL=info) except STATUS_LIST_TTL=${args.ttl}, on Postgres; ${new Date().toISOString()}.\n`;
  fs.writeFileSync(path.resolve(ROOT, args.out), `# Token Status List bench\n\n${section}`);
  process.stdout.write(`${section}\nwritten: ${args.out}\n`);
}

main().catch(async (err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  await stopAll();
  process.exit(1);
});

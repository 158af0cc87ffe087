// The `latchkey` command battery shared by the CLI tests: every command and its error cases, run
// as users run them (bin/latchkey.js in a child process), then what they wrote checked in the
// database itself (argon2id hashes, secret digests, nothing written by a refused command).
import crypto from 'node:crypto';
import argon2 from 'argon2';
import type { Kysely } from 'kysely';
import { createDb } from '../../src/db/create-db.js';
import { acquireDataDirLock } from '../../src/db/data-dir-lock.js';
import type { Database } from '../../src/db/types.js';
import { runCli, type CliRun } from './process.js';

/** A tap test object with its plugins (the type tap's own callbacks receive). */
export type Tap = Parameters<Parameters<(typeof import('tap'))['test']>[0]>[0];

export interface Setting {
  env: Record<string, string>;
  /** Commands may run at once (Postgres, or a running server); not when each opens the data itself. */
  concurrent: boolean;
  /** Every error case, or (each command opening PGlite itself costs seconds) one of each kind. */
  allErrorCases: boolean;
  /** Open the database the commands used (after they ran). */
  withDb<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T>;
}

export interface Written {
  alice: { id: string; password: string };
  bob: { id: string; password: string };
  full: { clientId: string; secret: string };
  publicId: string;
  deleted: { clientId: string; secret: string };
}

export const sha256 = (s: string): string => crypto.createHash('sha256').update(s, 'utf8').digest('base64url');

/** Asserts a refused command: non-zero exit, nothing on stdout, one line on stderr. */
export function refused(t: Tap, r: CliRun, what: string, pattern?: RegExp): void {
  t.not(r.code, 0, `${what}: non-zero exit`);
  t.equal(r.stdout, '', `${what}: nothing on stdout`);
  const lines = r.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, `${what}: one line on stderr (${JSON.stringify(r.stderr)})`);
  t.match(lines[0], /^error: /, `${what}: the line is an error`);
  if (pattern) t.match(lines[0], pattern, `${what}: the line says why`);
}

function ok(t: Tap, r: CliRun, what: string): void {
  t.equal(r.code, 0, `${what}: exit 0 (${r.stderr.trim()})`);
  t.equal(r.stderr, '', `${what}: nothing on stderr`);
}

async function sequential<A, B>(items: A[], fn: (a: A) => Promise<B>): Promise<B[]> {
  const out: B[] = [];
  for (const item of items) out.push(await fn(item));
  return out;
}

function json<T>(r: CliRun): T {
  return JSON.parse(r.stdout) as T;
}

export interface Refusal {
  what: string;
  args: string[];
  stdin?: string;
  why: RegExp;
  /** Run in every setting (one of each kind of error); the others only where commands are cheap. */
  core?: boolean;
}

/** Runs every command against `setting`; returns what it wrote, for the database checks. */
export async function commands(t: Tap, setting: Setting): Promise<Written> {
  const cli = (args: string[], stdin?: string) => runCli(args, setting.env, stdin);
  const refuseAll = async (cases: Refusal[]): Promise<void> => {
    const chosen = setting.allErrorCases ? cases : cases.filter((c) => c.core);
    const run = (c: Refusal) => cli(c.args, c.stdin);
    const results = setting.concurrent ? await Promise.all(chosen.map(run)) : await sequential(chosen, run);
    chosen.forEach((c, i) => refused(t, results[i], c.what, c.why));
  };

  // migrate
  const m1 = await cli(['migrate', '--json']);
  ok(t, m1, 'migrate');
  t.ok(Array.isArray(json<{ applied: string[] }>(m1).applied), 'migrate --json lists the migrations it applied');
  const m2 = await cli(['migrate', '--json']);
  ok(t, m2, 'migrate again');
  t.same(json<{ applied: string[] }>(m2).applied, [], 'a second migrate applies nothing');
  if (setting.allErrorCases) ok(t, await cli(['migrate']), 'migrate (text)');

  // users create
  const alicePassword = 'correct horse battery';
  const a = await cli(['users', 'create', '--email', 'Alice@Example.com', '--name', 'Alice Example', '--email-verified', '--password-stdin', '--json'], `${alicePassword}\n`);
  ok(t, a, 'users create --json');
  t.match(a.stdout, /^\{[^\n]*\}\n$/, 'one JSON line');
  const alice = json<{ id: string; email: string }>(a);
  t.same(Object.keys(alice).sort(), ['email', 'id'], 'users create prints {"id","email"}');
  t.match(alice.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'the id is a uuid');
  t.equal(alice.email, 'Alice@Example.com');

  const bobPassword = '12345678'; // exactly the minimum length once the newline is stripped
  const b = await cli(['users', 'create', '--email', 'bob@example.com', '--password-stdin'], `${bobPassword}\r\n`);
  ok(t, b, 'users create (text)');
  t.match(b.stdout, /^id: [0-9a-f-]{36}\nemail: bob@example\.com\n$/, 'readable text without --json');
  const bobId = /^id: (\S+)/.exec(b.stdout)![1];

  const pw = 'a fine password\n';
  await refuseAll([
    { what: 'duplicate email (other case)', args: ['users', 'create', '--email', 'alice@example.COM', '--password-stdin'], stdin: pw, why: /already exists/, core: true },
    { what: 'invalid email', args: ['users', 'create', '--email', 'not-an-email', '--password-stdin'], stdin: pw, why: /invalid email/ },
    { what: 'email with a space', args: ['users', 'create', '--email', 'a b@example.com', '--password-stdin'], stdin: pw, why: /invalid email/ },
    { what: 'password under 8 characters', args: ['users', 'create', '--email', 'short@example.com', '--password-stdin'], stdin: 'short\n', why: /at least 8/ },
    { what: '7 characters and a newline', args: ['users', 'create', '--email', 'seven@example.com', '--password-stdin'], stdin: '1234567\n', why: /at least 8/, core: true },
    { what: 'empty password', args: ['users', 'create', '--email', 'empty@example.com', '--password-stdin'], stdin: '\n', why: /password/ },
    { what: 'without --password-stdin', args: ['users', 'create', '--email', 'nostdin@example.com'], stdin: pw, why: /password-stdin/ },
    { what: 'without --email', args: ['users', 'create', '--password-stdin'], stdin: pw, why: /--email/ },
    { what: 'unknown option --password', args: ['users', 'create', '--email', 'x@example.com', '--password', 'inline-pw', '--password-stdin'], stdin: pw, why: /password/ },
    // unknown commands and options
    { what: 'unknown command', args: ['frobnicate'], why: /unknown command/, core: true },
    { what: 'unknown subcommand', args: ['users', 'frobnicate'], why: /unknown command/ },
    { what: 'unknown option', args: ['users', 'list', '--bogus'], why: /bogus/, core: true },
    { what: 'unexpected argument', args: ['users', 'list', 'extra'], why: /unexpected argument/ },
    { what: 'missing argument', args: ['users', 'disable'], why: /missing argument/ },
  ]);

  // users list, disable, enable
  const list = await cli(['users', 'list', '--json']);
  ok(t, list, 'users list --json');
  const users = json<Array<Record<string, unknown>>>(list);
  t.equal(users.length, 2, 'two users: the refused commands wrote none');
  t.match(users, [
    { id: alice.id, email: 'Alice@Example.com', email_verified: true, name: 'Alice Example', disabled: false },
    { id: bobId, email: 'bob@example.com', email_verified: false, name: null, disabled: false },
  ]);
  for (const u of users) t.notOk('password_hash' in u, 'users list never shows the hash');
  t.notMatch(list.stdout, /argon2/, 'no hash in the output');
  if (setting.allErrorCases) {
    const listText = await cli(['users', 'list']);
    ok(t, listText, 'users list (text)');
    t.match(listText.stdout, /email: Alice@Example\.com/);
  }

  const d1 = await cli(['users', 'disable', 'ALICE@example.com', '--json']);
  ok(t, d1, 'users disable <email>');
  t.match(json(d1), { id: alice.id, disabled: true });
  const d2 = await cli(['users', 'disable', bobId, '--json']);
  ok(t, d2, 'users disable <id>');
  t.match(json(d2), { id: bobId, disabled: true });
  const e1 = await cli(['users', 'enable', alice.id, '--json']);
  ok(t, e1, 'users enable <id>');
  t.match(json(e1), { id: alice.id, disabled: false });
  await refuseAll([
    { what: 'disable an unknown user', args: ['users', 'disable', 'nobody@example.com'], why: /no such user/, core: true },
    { what: 'enable an unknown id', args: ['users', 'enable', crypto.randomUUID()], why: /no such user/ },
  ]);
  t.match(json(await cli(['users', 'list', '--json'])), [
    { id: alice.id, disabled: false },
    { id: bobId, disabled: true },
  ]);

  // clients create
  const full = await cli([
    'clients', 'create',
    '--name', 'Full App',
    '--redirect-uri', 'https://app.example.com/cb',
    '--redirect-uri', 'http://127.0.0.1:8080/cb',
    '--post-logout-redirect-uri', 'https://app.example.com/bye',
    '--grant-types', 'authorization_code,refresh_token,client_credentials',
    '--scopes', 'openid profile email offline_access api:read',
    '--audiences', 'https://api.example.com,https://other.example.com',
    '--first-party',
    '--json',
  ]);
  ok(t, full, 'clients create with every option');
  const fullClient = json<Record<string, unknown> & { client_id: string; client_secret: string }>(full);
  t.match(fullClient, {
    client_id: String,
    client_secret: String,
    name: 'Full App',
    type: 'confidential',
    redirect_uris: ['https://app.example.com/cb', 'http://127.0.0.1:8080/cb'],
    post_logout_redirect_uris: ['https://app.example.com/bye'],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    scopes: ['openid', 'profile', 'email', 'offline_access', 'api:read'],
    audiences: ['https://api.example.com', 'https://other.example.com'],
    first_party: true,
  });
  t.ok(Buffer.from(fullClient.client_secret, 'base64url').length >= 32, 'the secret has at least 256 bits');
  t.notOk('secret_digest' in fullClient, 'the digest is not shown');

  const machine = await cli(['clients', 'create', '--name', 'Machine', '--grant-types', 'client_credentials', '--scopes', 'api:read']);
  ok(t, machine, 'clients create (text), client_credentials only, no redirect URI');
  const machineId = /^client_id: (\S+)$/m.exec(machine.stdout)?.[1];
  const machineSecret = /^client_secret: (\S+)$/m.exec(machine.stdout)?.[1];
  t.ok(machineId && machineSecret, 'readable text shows the client id and the secret');

  const spa = await cli(['clients', 'create', '--name', 'SPA', '--public', '--redirect-uri', 'http://localhost:5173/cb', '--json']);
  ok(t, spa, 'clients create --public');
  const spaClient = json<Record<string, unknown> & { client_id: string }>(spa);
  t.match(spaClient, { type: 'public', first_party: false, grant_types: ['authorization_code', 'refresh_token'] });
  t.notOk('client_secret' in spaClient, 'a public client has no secret');

  const base = ['clients', 'create', '--name', 'Bad'];
  const cb = ['--redirect-uri', 'https://app.example.com/cb'];
  await refuseAll([
    { what: 'relative redirect URI', args: [...base, '--redirect-uri', '/cb'], why: /absolute/, core: true },
    { what: 'redirect URI with a fragment', args: [...base, '--redirect-uri', 'https://app.example.com/cb#frag'], why: /fragment/ },
    { what: 'http redirect URI on a non-loopback host', args: [...base, '--redirect-uri', 'http://app.example.com/cb'], why: /loopback/ },
    { what: 'http post-logout URI', args: [...base, ...cb, '--post-logout-redirect-uri', 'http://app.example.com/bye'], why: /loopback/ },
    { what: 'latchkey:admin in --scopes', args: [...base, ...cb, '--scopes', 'openid latchkey:admin'], why: /latchkey:admin.*reserved|reserved.*latchkey:admin/, core: true },
    { what: 'public client with client_credentials', args: [...base, '--public', '--grant-types', 'client_credentials'], why: /public/ },
    { what: 'unknown grant type', args: [...base, ...cb, '--grant-types', 'implicit'], why: /implicit/ },
    { what: 'authorization_code without a redirect URI', args: [...base, '--grant-types', 'authorization_code'], why: /redirect-uri/ },
    { what: 'audience that is not a URI', args: [...base, '--grant-types', 'client_credentials', '--audiences', 'not-a-url'], why: /audiences/ },
    { what: 'clients create without --name', args: ['clients', 'create', ...cb], why: /--name/ },
    { what: 'a client cannot choose its secret', args: [...base, ...cb, '--secret', 'mine'], why: /secret/ },
  ]);

  // clients list, delete
  const cl = await cli(['clients', 'list', '--json']);
  ok(t, cl, 'clients list --json');
  const clients = json<Array<Record<string, unknown>>>(cl);
  t.same(clients.map((c) => c.client_id).sort(), [fullClient.client_id, machineId, spaClient.client_id].sort(), 'three clients: the refused commands wrote none');
  for (const c of clients) {
    t.notOk('client_secret' in c || 'secret_digest' in c, 'clients list shows no secret and no digest');
  }
  for (const s of [fullClient.client_secret, machineSecret!]) {
    t.notOk(cl.stdout.includes(s) || cl.stdout.includes(sha256(s)), 'the secret is shown once only');
  }
  if (setting.allErrorCases) ok(t, await cli(['clients', 'list']), 'clients list (text)');

  const del = await cli(['clients', 'delete', machineId!, '--json']);
  ok(t, del, 'clients delete');
  t.match(json(del), { client_id: machineId, deleted: true });
  await refuseAll([
    { what: 'delete it again', args: ['clients', 'delete', machineId!], why: /no such client/, core: true },
    { what: 'delete without an id', args: ['clients', 'delete'], why: /missing argument/ },
  ]);

  // kek generate
  const k1 = await cli(['kek', 'generate', '--json']);
  ok(t, k1, 'kek generate --json');
  const kek1 = json<{ kek: string }>(k1).kek;
  t.match(kek1, /^[A-Za-z0-9+/]{43}=$/, 'standard base64');
  t.equal(Buffer.from(kek1, 'base64').length, 32, 'of 32 bytes');
  const k2 = await cli(['kek', 'generate']);
  ok(t, k2, 'kek generate (text)');
  const kek2 = /^kek: (\S+)$/m.exec(k2.stdout)?.[1];
  t.equal(Buffer.from(kek2 ?? '', 'base64').length, 32);
  t.not(kek1, kek2, 'a new KEK every time');

  return {
    alice: { id: alice.id, password: alicePassword },
    bob: { id: bobId, password: bobPassword },
    full: { clientId: fullClient.client_id, secret: fullClient.client_secret },
    publicId: spaClient.client_id,
    deleted: { clientId: machineId!, secret: machineSecret! },
  };
}

/** What the commands wrote, read from the database itself. */
export async function checkDatabase(t: Tap, db: Kysely<Database>, w: Written): Promise<void> {
  const users = await db.selectFrom('users').selectAll().orderBy('created_at').execute();
  t.equal(users.length, 2, 'two users in the database');
  const alice = users.find((u) => u.id === w.alice.id)!;
  const bob = users.find((u) => u.id === w.bob.id)!;
  t.match(alice, { email: 'Alice@Example.com', email_verified: true, name: 'Alice Example', disabled: false });
  t.match(bob, { email: 'bob@example.com', email_verified: false, name: null, disabled: true });
  for (const [u, pw] of [
    [alice, w.alice.password],
    [bob, w.bob.password],
  ] as const) {
    const [, kind, , paramText] = u.password_hash.split('$');
    t.equal(kind, 'argon2id', 'an argon2id hash');
    const params = Object.fromEntries((paramText ?? '').split(',').map((kv) => kv.split('=')));
    t.ok(Number(params.m) >= 19456 && Number(params.t) >= 2 && Number(params.p) >= 1, `with OWASP parameters, m ≥ 19 MiB, t ≥ 2, p ≥ 1 (${paramText})`);
    t.ok(await argon2.verify(u.password_hash, pw), 'the hash verifies the password');
    t.notOk(await argon2.verify(u.password_hash, `${pw}\n`), 'the trailing newline was stripped');
    t.notOk(JSON.stringify(u).includes(pw), 'the password itself is not stored');
  }

  const clients = await db.selectFrom('clients').selectAll().execute();
  t.equal(clients.length, 2, 'two clients in the database');
  const full = clients.find((c) => c.client_id === w.full.clientId)!;
  t.equal(full.secret_digest, sha256(w.full.secret), 'the secret is stored as its SHA-256 digest (base64url)');
  t.notOk(JSON.stringify(full).includes(w.full.secret), 'the secret appears nowhere in the row');
  t.match(full, { is_public: false, first_party: true, redirect_uris: ['https://app.example.com/cb', 'http://127.0.0.1:8080/cb'] });
  const spa = clients.find((c) => c.client_id === w.publicId)!;
  t.equal(spa.secret_digest, null, 'a public client has no digest');
  t.notOk(
    clients.some((c) => c.client_id === w.deleted.clientId),
    'the deleted client is gone',
  );
}

/** The embedded database under `dataDir`; withDb opens it under its lock (no server may run then). */
export function embeddedSetting(dataDir: string, cwd: string, serverRunning: boolean): Setting {
  return {
    env: { DATA_DIR: dataDir, CWD: cwd },
    concurrent: serverRunning,
    allErrorCases: serverRunning,
    async withDb(fn) {
      const lock = acquireDataDirLock(dataDir);
      if (!lock.acquired) throw new Error(`data directory in use by ${lock.pid}`);
      try {
        const dbh = await createDb({ databaseUrl: undefined, dataDir });
        try {
          return await fn(dbh.db);
        } finally {
          await dbh.close();
        }
      } finally {
        lock.release();
      }
    },
  };
}

// The embedded database failing under a running server: a full disk, a lost data-directory lock,
// an instance that is gone. Each is simulated by making every statement of the app's database
// handle fail with the error PGlite (or Node's file system beneath it) raises. The rules are those
// of a Postgres outage: 503 with Retry-After, never 500; the stateless paths from memory within
// DB_OUTAGE_GRACE_SECONDS, 503 past it; one clear warning naming the cause, no stack.
import t, { type Test } from 'tap';
import { PassThrough } from 'node:stream';
import type { KyselyPlugin } from 'kysely';
import { ManualClock } from '../../src/core/clock.js';
import { loadConfig } from '../../src/core/config.js';
import { openRuntime, type Runtime } from '../../src/ops/runtime.js';
import { buildApp } from '../../src/app.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { authorizationUrl, loginAndRedeem, postForm, tokenRequest } from '../helpers/flow.js';
import { waitFor } from '../helpers/process.js';
import { freePort, tempDir, TEST_KEK } from '../helpers/runtime.js';

const REDIRECT = 'http://127.0.0.1:9999/cb';
const API = 'https://api.example.com';
const SCOPE = 'openid profile offline_access api:read';

interface LogLine {
  level: number;
  msg: string;
  kind?: string;
  code?: string;
  reason?: string;
}

/** A server on an in-memory PGlite whose app-side statements fail while `fault.error` is set. */
async function faultyServer(t: Test, env: Record<string, string> = {}) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const config = loadConfig({ DATABASE_URL: 'memory:', DATA_DIR: tempDir(), LATCHKEY_KEK: TEST_KEK, PORT: String(port), ISSUER: issuer, LOG_LEVEL: 'info', ...env });
  const clock = new ManualClock(Date.now());
  const base = await openRuntime(config, { clock });
  const fault: { error?: Error } = {};
  const failing: KyselyPlugin = {
    transformQuery(args) {
      if (fault.error) throw fault.error;
      return args.node;
    },
    transformResult: async (args) => args.result,
  };
  const db = base.db.withPlugin(failing);
  const rt: Runtime = {
    ...base,
    db,
    dbh: {
      ...base.dbh,
      db,
      prepared: (name, query) => (fault.error ? Promise.reject(fault.error) : base.dbh.prepared(name, query)),
    },
  };
  const stream = new PassThrough();
  let captured = '';
  stream.on('data', (c: Buffer) => (captured += c.toString('utf8')));
  const app = await buildApp(rt, { logStream: stream });
  await app.listen({ port, host: '127.0.0.1' });
  t.teardown(async () => {
    fault.error = undefined;
    await app.close();
    await base.close();
  });
  const logs = (): LogLine[] =>
    captured
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogLine);

  await createUser(rt, 'ella@example.com', 'ella password 1', ['--name', 'Ella']);
  const appClient = await createClient(rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', API, '--scopes', SCOPE]);
  const rs = await createClient(rt, ['--name', 'RS', '--grant-types', 'client_credentials', '--scopes', 'api:read', '--audiences', API, '--resource-server', API]);
  const { tokens } = await loginAndRedeem({ issuer, clientId: appClient.clientId, secret: appClient.clientSecret, redirectUri: REDIRECT, email: 'ella@example.com', password: 'ella password 1', scope: SCOPE });
  let refreshToken = tokens.refresh_token!;

  const call = {
    refresh: async () => {
      const r = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: refreshToken }, { clientId: appClient.clientId, secret: appClient.clientSecret });
      if (r.status === 200) refreshToken = r.body.refresh_token as string;
      return r;
    },
    userinfo: async () => {
      const r = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
    },
    clientCredentials: () => tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'api:read' }, { clientId: rs.clientId, secret: rs.clientSecret }),
    introspect: () => postForm(`${issuer}/introspect`, { token: tokens.access_token }, { clientId: rs.clientId, secret: rs.clientSecret }),
    discovery: () => fetch(`${issuer}/.well-known/openid-configuration`),
    readyz: async () => {
      const r = await fetch(`${issuer}/readyz`);
      return { status: r.status, body: (await r.json()) as { status: string; outage?: { cached_state_age_seconds: number; serving_from_memory: boolean } } };
    },
  };
  // what the stateless paths need is in memory now
  t.equal((await call.userinfo()).status, 200);
  t.equal((await call.clientCredentials()).status, 200);
  t.equal((await call.introspect()).body.active, true);
  return { issuer, clock, fault, logs, call };
}

const failures: { what: string; error: () => Error; kind: string; code?: string; reason: RegExp }[] = [
  {
    what: 'a full disk',
    // PGlite's error for a write that finds no space (SQLSTATE 53100, disk_full)
    error: () => Object.assign(new Error('could not extend file "base/5/16402": No space left on device'), { code: '53100', severity: 'ERROR' }),
    kind: 'disk_full',
    code: '53100',
    reason: /No space left on device/,
  },
  {
    what: 'a lost data-directory lock',
    // what Node's file system raises beneath PGlite when the directory's lock is gone (NFS)
    error: () => Object.assign(new Error('ENOLCK: no locks available, fcntl'), { code: 'ENOLCK', errno: -37, syscall: 'fcntl' }),
    kind: 'storage',
    code: 'ENOLCK',
    reason: /no locks available/,
  },
  {
    what: 'an embedded instance that is gone',
    error: () => new Error('PGlite is closed'),
    kind: 'closed',
    reason: /PGlite is closed/,
  },
];

t.test('the embedded database fails under a running server', async (t) => {
  const s = await faultyServer(t, { DB_OUTAGE_GRACE_SECONDS: '30' });
  for (const [i, f] of failures.entries()) {
    await t.test(f.what, async (t) => {
      // one warning a minute at most: each case is a new outage, a minute after the last
      if (i > 0) s.clock.advance(61);
      const warningsBefore = s.logs().filter((l) => l.level === 40).length;
      s.fault.error = f.error();

      const r = await s.call.refresh();
      t.equal(r.status, 503, 'refresh: 503 (it must be durable)');
      t.equal(r.headers.get('retry-after'), '1');
      t.same(r.body, { error: 'temporarily_unavailable', error_description: 'the service is briefly unavailable; try again in a moment' });
      const page = await fetch(authorizationUrl(s.issuer, 'any-client', REDIRECT), { headers: { accept: 'text/html' } });
      t.equal(page.status, 503, 'a browser page: 503');
      t.match(page.headers.get('content-type'), /^text\/html/);
      t.equal(page.headers.get('retry-after'), '1');
      t.match(await page.text(), /try again in a moment/i);

      t.equal((await s.call.userinfo()).status, 200, '/userinfo within the grace: from memory');
      t.equal((await s.call.clientCredentials()).status, 200, 'client_credentials within the grace');
      t.equal((await s.call.introspect()).body.active, true, '/introspect of a JWT within the grace');
      t.equal((await s.call.discovery()).status, 200, 'discovery within the grace');
      const ready = await s.call.readyz();
      t.equal(ready.status, 503);
      t.equal(ready.body.status, 'degraded', '/readyz: degraded');
      t.equal(ready.body.outage?.serving_from_memory, true);

      const warnings = s.logs().filter((l) => l.level === 40).slice(warningsBefore);
      t.equal(warnings.length, 1, 'one warning for the outage');
      t.match(warnings[0], { msg: new RegExp(`^database unavailable \\(${f.kind}\\)`), kind: f.kind, reason: f.reason, ...(f.code ? { code: f.code } : {}) }, 'that names the cause');

      s.clock.advance(31);
      const past = await s.call.userinfo();
      t.equal(past.status, 503, '/userinfo past the grace: 503');
      t.equal(past.headers.get('retry-after'), '1');
      t.equal((await s.call.clientCredentials()).status, 503, 'client_credentials past the grace: 503');
      t.equal((await s.call.discovery()).status, 503, 'discovery past the grace: 503');
      const late = await s.call.readyz();
      t.equal(late.body.status, 'unavailable');
      t.ok(late.body.outage!.cached_state_age_seconds >= 31, 'with the age of the cached state');

      s.fault.error = undefined;
      await t.resolves(waitFor(async () => ((await s.call.refresh()).status === 200 ? true : undefined), 5000, 20), 'served again once the database is');
      t.equal((await s.call.userinfo()).status, 200);
      t.equal((await s.call.readyz()).body.status, 'ready');
    });
  }
  const lines = s.logs();
  t.same(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'no error line, no stack');
  t.equal(lines.filter((l) => l.msg === 'database available again').length, failures.length, 'one line as each outage ends');
});

t.test('DB_OUTAGE_GRACE_SECONDS=0: closed as soon as the outage is known', async (t) => {
  const s = await faultyServer(t, { DB_OUTAGE_GRACE_SECONDS: '0' });
  s.fault.error = failures[0]!.error();
  t.equal((await s.call.refresh()).status, 503, 'the first failing statement makes the outage known');
  for (const [name, status] of [
    ['userinfo', (await s.call.userinfo()).status],
    ['client_credentials', (await s.call.clientCredentials()).status],
    ['introspect', (await s.call.introspect()).status],
    ['discovery', (await s.call.discovery()).status],
  ] as const) {
    t.equal(status, 503, `${name}: 503 at once`);
  }
  t.equal((await s.call.readyz()).body.status, 'unavailable');
  s.fault.error = undefined;
  await t.resolves(waitFor(async () => ((await s.call.userinfo()).status === 200 ? true : undefined), 5000, 20), 'and open again with the database');
});

// Sessions, audit and user lifecycle through the real `latchkey` binary, against the Postgres
// database an in-process server is serving: the command is another process, so the server learns
// of its revocations through LISTEN/NOTIFY (we poll with a generous deadline, never time it).
import t from 'tap';
import { dropCreatedDatabases, postgres, postgresOnly } from '../helpers/backends.js';
import { createTestEnv, tempDir, TEST_KEK } from '../helpers/runtime.js';
import { createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, tokenRequest, type TokenSet, authorizeState as authorizeStateAt, canLogIn as canLogInAt } from '../helpers/flow.js';
import { Browser } from '../helpers/http-login.js';
import { runCli, waitFor, type CliRun } from '../helpers/process.js';
import { resolveCommand } from '../../src/cli/registry.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';
const PW = 'alice password 1';
const BOB_PW = 'bob password 1';
const DEADLINE = 30_000;

t.test('sessions, audit and users through the latchkey command', { skip: postgresOnly }, async (t) => {
  const databaseUrl = await postgres.create();
  const e = await createTestEnv(databaseUrl, { listen: true });
  t.teardown(() => e.close());
  const issuer = e.config.issuer;
  const env = { DATABASE_URL: databaseUrl, LATCHKEY_KEK: TEST_KEK, ISSUER: issuer, DATA_DIR: tempDir(), CWD: tempDir(), LOG_LEVEL: 'warn' };
  const latchkey = (args: string[], stdin?: string): Promise<CliRun> => runCli(args, env, stdin);
  const json = <T>(r: CliRun, what: string): T => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  const aliceId = await createUser(e.rt, ALICE, PW);
  const bobId = await createUser(e.rt, BOB, BOB_PW);
  const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid profile offline_access']);
  const app2 = await createClient(e.rt, ['--name', 'App 2', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid offline_access']);

  const login = async (email: string, password: string, client: TestClient = app, browser?: Browser): Promise<{ tokens: TokenSet; browser: Browser }> =>
    loginAndRedeem({ issuer, clientId: client.clientId, secret: client.clientSecret, redirectUri: REDIRECT, email, password, scope: 'openid offline_access', browser });
  const refresh = (rt: string, c: TestClient = app) => tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: rt }, { clientId: c.clientId, secret: c.clientSecret });
  const userinfo = async (at: string) => (await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status;
  const rejectedSoon = (at: string) => waitFor(async () => ((await userinfo(at)) === 401 ? true : undefined), DEADLINE);
  const fid = (at: string): string => (JSON.parse(Buffer.from(at.split('.')[1]!, 'base64url').toString()) as { fid: string }).fid;
  const authorizeState = (browser: Browser) => authorizeStateAt(browser, issuer, app.clientId, REDIRECT);
  const canLogIn = (email: string, password: string) => canLogInAt(issuer, app.clientId, REDIRECT, email, password);

  await t.test('sessions list and sessions revoke --family / --client / --user', async (t) => {
    const a1 = await login(ALICE, PW);
    const a2 = await login(ALICE, PW, app2, a1.browser);
    const b1 = await login(BOB, BOB_PW);

    const list = json<Array<Record<string, unknown>>>(await latchkey(['sessions', 'list', '--user', ALICE, '--json']), 'sessions list');
    t.ok(Array.isArray(list));
    t.equal(list.length, 2, "alice's two families, not bob's");
    t.same(list.map((s) => s.id).sort(), [fid(a1.tokens.access_token), fid(a2.tokens.access_token)].sort(), 'id is the family id');
    for (const s of list) {
      t.match(s, { id: String, client_id: String, created_at: String, last_used_at: String, user_id: aliceId });
      t.ok(Date.parse(s.created_at as string) && Date.parse(s.last_used_at as string));
    }
    t.same(list.map((s) => s.client_id).sort(), [app.clientId, app2.clientId].sort());
    t.notOk(JSON.stringify(list).includes(a1.tokens.refresh_token!), 'no token in the listing');
    t.same(json<unknown[]>(await latchkey(['sessions', 'list', '--user', aliceId, '--json']), 'by id').length, 2, 'by id too');
    const text = await latchkey(['sessions', 'list', '--user', ALICE]);
    t.equal(text.code, 0);
    t.match(text.stdout, fid(a1.tokens.access_token), 'the text form names the family');

    // one family, from another process: this server hears of it through LISTEN/NOTIFY
    const rev = json<Record<string, unknown>>(await latchkey(['sessions', 'revoke', '--family', fid(a1.tokens.access_token), '--json']), 'revoke --family');
    t.equal(rev.revoked, true);
    t.equal(rev.already_revoked, false);
    t.equal((await refresh(a1.tokens.refresh_token!)).body.error, 'invalid_grant', 'the family’s refresh token is dead');
    await t.resolves(rejectedSoon(a1.tokens.access_token), 'its access token is rejected by userinfo');
    t.equal(await userinfo(a2.tokens.access_token), 200, 'the other family lives');
    t.equal(json<unknown[]>(await latchkey(['sessions', 'list', '--user', ALICE, '--json']), 'list').length, 1);
    t.equal(json<unknown[]>(await latchkey(['sessions', 'list', '--user', ALICE, '--all', '--json']), 'list --all').length, 2, '--all shows revoked ones');

    const refusals = [
      ['an unknown family', ['sessions', 'revoke', '--family', '00000000-0000-4000-8000-000000000000']],
      ['a malformed family', ['sessions', 'revoke', '--family', 'nope']],
      ['an unknown user', ['sessions', 'revoke', '--user', 'nobody@example.com']],
      ['an unknown client', ['sessions', 'revoke', '--client', 'nope']],
      ['two selectors', ['sessions', 'revoke', '--user', ALICE, `--client=${app.clientId}`]],
      ['no selector', ['sessions', 'revoke']],
      ['list without --user/--client', ['sessions', 'list']],
    ] as Array<[string, string[]]>;
    // Postgres takes them at once
    const refused = await Promise.all(refusals.map(([, args]) => latchkey(args)));
    refusals.forEach(([what], i) => {
      t.not(refused[i]!.code, 0, `${what}: refused`);
      t.match(refused[i]!.stderr, /error:/, `${what}: says why`);
    });
    t.equal(json<unknown[]>(await latchkey(['sessions', 'list', '--user', ALICE, '--json']), 'list').length, 1, 'the refusals changed nothing');

    // a client's families
    const c = json<Record<string, unknown>>(await latchkey(['sessions', 'revoke', `--client=${app2.clientId}`, '--json']), 'revoke --client');
    t.equal(c.families_revoked, 1);
    t.equal((await refresh(a2.tokens.refresh_token!, app2)).body.error, 'invalid_grant');
    await t.resolves(rejectedSoon(a2.tokens.access_token));
    t.equal((await refresh(b1.tokens.refresh_token!)).status, 200, "another client's family lives");

    // a user's families and login sessions
    t.equal(await authorizeState(b1.browser), 'sso');
    const b2 = await login(BOB, BOB_PW, app, b1.browser);
    const u = json<Record<string, unknown>>(await latchkey(['sessions', 'revoke', '--user', BOB, '--json']), 'revoke --user');
    t.equal(u.user_id, bobId);
    t.ok((u.families_revoked as number) >= 2);
    t.ok((u.sessions_ended as number) >= 1);
    t.equal((await refresh(b2.tokens.refresh_token!)).body.error, 'invalid_grant');
    await t.resolves(rejectedSoon(b2.tokens.access_token));
    t.equal(await authorizeState(b1.browser), 'login', "bob's SSO session is over");
  });

  await t.test('users set-password ends everything; the old password no longer logs in', async (t) => {
    const a = await login(ALICE, PW);
    const NEW = 'alice new password 2';
    t.not((await latchkey(['users', 'set-password', ALICE, '--password-stdin'], 'short\n')).code, 0, 'a short password is refused');
    t.equal(await userinfo(a.tokens.access_token), 200, '…and changed nothing');
    const r = json<Record<string, unknown>>(await latchkey(['users', 'set-password', ALICE, '--password-stdin', '--json'], `${NEW}\n`), 'set-password');
    t.equal(r.id, aliceId);
    t.ok((r.families_revoked as number) >= 1);
    t.ok((r.sessions_ended as number) >= 1);
    t.equal((await refresh(a.tokens.refresh_token!)).body.error, 'invalid_grant');
    await t.resolves(rejectedSoon(a.tokens.access_token));
    t.equal(await authorizeState(a.browser), 'login');
    t.equal(await canLogIn(ALICE, PW), false, 'the old password fails');
    t.equal(await canLogIn(ALICE, NEW), true, 'the new one works');
  });

  await t.test('users disable ends families, the SSO session and live access tokens', async (t) => {
    const a = await login(ALICE, 'alice new password 2');
    t.equal(await authorizeState(a.browser), 'sso');
    t.equal(await userinfo(a.tokens.access_token), 200);
    const r = json<Record<string, unknown>>(await latchkey(['users', 'disable', ALICE, '--json']), 'disable');
    t.equal(r.disabled, true);
    t.ok((r.families_revoked as number) >= 1);
    t.equal((await refresh(a.tokens.refresh_token!)).body.error, 'invalid_grant', 'refresh → invalid_grant');
    t.equal(await authorizeState(a.browser), 'login', 'the SSO session is over');
    await t.resolves(rejectedSoon(a.tokens.access_token), 'the live access token is rejected by userinfo');
    const denied = await e.rt.db.selectFrom('denylist').select('jti').execute();
    t.ok(denied.some((d) => d.jti.startsWith('family:')), 'its family is on the denylist');
    t.equal(await canLogIn(ALICE, 'alice new password 2'), false, 'a disabled user cannot log in');
  });

  await t.test('users delete', async (t) => {
    const b = await login(BOB, BOB_PW);
    const r = json<Record<string, unknown>>(await latchkey(['users', 'delete', BOB, '--json']), 'delete');
    t.equal(r.deleted, true);
    t.equal(r.id, bobId);
    t.equal((await refresh(b.tokens.refresh_token!)).body.error, 'invalid_grant');
    await t.resolves(rejectedSoon(b.tokens.access_token));
    t.equal(await authorizeState(b.browser), 'login');
    t.equal(await e.rt.db.selectFrom('users').select('id').where('id', '=', bobId).executeTakeFirst(), undefined, 'the user is gone');
    t.equal(await canLogIn(BOB, BOB_PW), false);
    const again = await latchkey(['users', 'delete', BOB]);
    t.equal(again.code, 1);
    t.match(again.stderr, /no such user/);
  });
  // `latchkey audit` is unreachable while src/cli/commands.ts lists 'audit' among the command
  // GROUPS (resolveCommand then refuses the one-word command): reported; the todo lifts itself
  // once the command resolves.
  const auditTodo = resolveCommand(['audit']) ? false : "src/cli/commands.ts: 'audit' must not be in GROUPS";
  await t.test('audit --user / --type', { todo: auditTodo }, async (t) => {
    const events = json<Array<Record<string, unknown>>>(await latchkey(['audit', '--user', aliceId, '--json']), 'audit');
    t.ok(events.length >= 3);
    t.ok(events.every((ev) => ev.user_id === aliceId), 'only alice');
    const revoked = events.filter((ev) => ev.type === 'admin.session_revoked');
    t.equal(revoked.length, 1, 'the family revoked by the CLI');
    t.equal(revoked[0]!.actor, 'cli');
    t.ok(events.some((ev) => ev.type === 'login.success'), 'logins are there');
    t.ok(events.some((ev) => ev.type === 'admin.password_changed'));
    t.ok(events.some((ev) => ev.type === 'admin.user_disabled'));
    t.same(json<unknown[]>(await latchkey(['audit', '--user', ALICE, '--json']), 'audit by email'), events, 'by email too');
    const typed = json<Array<Record<string, unknown>>>(await latchkey(['audit', '--type', 'admin.client_sessions_revoked', '--json']), 'audit --type');
    t.equal(typed.length, 1);
    t.equal(typed[0]!.client_id, app2.clientId);
    const deleted = json<Array<Record<string, unknown>>>(await latchkey(['audit', '--type', 'admin.user_deleted', '--json']), 'audit');
    t.equal(deleted.length, 1, 'the deletion is audited');
    t.equal((await latchkey(['audit', '--since', 'yesterday'])).code, 1, 'a bad --since is refused');
  });
});

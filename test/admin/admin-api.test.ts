// The admin API under /admin/: every endpoint with an admin client's client_credentials token
// (scope latchkey:admin, audience ${ISSUER}/admin) and its effect; 401 without a usable token, 403
// with the right audience but not the admin scope (or not an admin client); malformed input → 4xx.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { cli, createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest, type TokenSet, authorizeState as authorizeStateAt, canLogIn as canLogInAt } from '../helpers/flow.js';
import { Browser } from '../helpers/http-login.js';
import { signAccessToken } from '../../src/tokens/access-token.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const API = 'https://api.example.com';
const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';
const PW = 'alice password 1';
const BOB_PW = 'bob password 1';

interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

for (const backend of backends()) {
  t.test(`admin API on ${backend.name}`, async (t) => {
    const e: TestEnv = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const aliceId = await createUser(e.rt, ALICE, PW);
    const bobId = await createUser(e.rt, BOB, BOB_PW);
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', API, '--scopes', 'openid profile email offline_access api:read']);
    const app2 = await createClient(e.rt, ['--name', 'App 2', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid offline_access']);
    const admin = await createClient(e.rt, ['--name', 'Admin', '--admin']);
    // an admin client that may also ask for a non-admin scope: a token with the admin audience
    // but without latchkey:admin, minted through the API
    const adminish = await createClient(e.rt, ['--name', 'Reports', '--admin', '--scopes', 'reports:read']);
    // a normal client that registered the admin audience: it can never get latchkey:admin
    const squatter = await createClient(e.rt, ['--name', 'Squatter', '--grant-types', 'client_credentials', '--scopes', 'reports:read', '--audiences', `${issuer}/admin`]);
    const rs = await createClient(e.rt, ['--name', 'RS', '--grant-types', 'client_credentials', '--scopes', 'introspect', '--resource-server', API]);

    const adminToken = async (c: TestClient, scope: string): Promise<Reply> =>
      tokenRequest(issuer, { grant_type: 'client_credentials', scope, resource: `${issuer}/admin` }, { clientId: c.clientId, secret: c.clientSecret });
    const tok = await adminToken(admin, 'latchkey:admin');
    t.equal(tok.status, 200, 'the admin client gets a token');
    t.equal(tok.body.scope, 'latchkey:admin');
    const ADMIN = tok.body.access_token as string;

    const api = async (method: string, path: string, token?: string, body?: unknown): Promise<Reply> => {
      const headers: Record<string, string> = {};
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${issuer}/admin${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      let parsed: Record<string, unknown>;
      try {
        parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        parsed = { raw: text };
      }
      return { status: res.status, body: parsed, headers: res.headers };
    };

    const login = async (scope = 'openid profile offline_access api:read', browser?: Browser, email = ALICE, password = PW, client = app): Promise<{ tokens: TokenSet; browser: Browser }> =>
      loginAndRedeem({ issuer, clientId: client.clientId, secret: client.clientSecret, redirectUri: REDIRECT, email, password, scope, browser });
    const refresh = (rt: string, c: TestClient = app) => tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: rt }, { clientId: c.clientId, secret: c.clientSecret });
    const userinfo = async (at: string) => (await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status;
    const introspect = async (token: string) => (await postForm(`${issuer}/introspect`, { token }, { clientId: rs.clientId, secret: rs.clientSecret })).body;
    const authorizeState = (browser: Browser) => authorizeStateAt(browser, issuer, app.clientId, REDIRECT);
    const canLogIn = (email: string, password: string) => canLogInAt(issuer, app.clientId, REDIRECT, email, password);
    const familyOf = (accessToken: string): string => (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as { fid: string }).fid;

    await t.test('every endpoint refuses requests without a usable admin token', async (t) => {
      const { tokens } = await login();
      const fid = familyOf(tokens.access_token);
      const hashBefore = (await e.rt.db.selectFrom('users').select('password_hash').where('id', '=', aliceId).executeTakeFirstOrThrow()).password_hash;

      const noAdminScope = await adminToken(adminish, 'reports:read');
      t.equal(noAdminScope.status, 200);
      const squatterToken = await adminToken(squatter, 'reports:read');
      t.equal(squatterToken.status, 200, 'a normal client with the admin audience gets a token…');
      t.equal((await adminToken(squatter, 'latchkey:admin')).body.error, 'invalid_scope', '…but never the admin scope');
      const appCc = await createClient(e.rt, ['--name', 'Machine', '--grant-types', 'client_credentials', '--scopes', 'jobs', '--audiences', API]);
      const machine = await tokenRequest(issuer, { grant_type: 'client_credentials' }, { clientId: appCc.clientId, secret: appCc.clientSecret });
      // tokens the API cannot mint, signed with the server's own key: what if one existed?
      const signed = async (clientId: string, sub: string, scope: string[], aud = [`${issuer}/admin`]) => (await signAccessToken(e.rt, { sub, clientId, scope, aud, statusIdx: 0 })).token;
      const nonAdminWithScope = await signed(app.clientId, app.clientId, ['latchkey:admin']);
      const userDelegated = await signed(admin.clientId, aliceId, ['latchkey:admin']);
      const expired = await signAccessToken({ ...e.rt, clock: { now: () => e.clock.now() - 3600_000 } }, { sub: admin.clientId, clientId: admin.clientId, scope: ['latchkey:admin'], aud: [`${issuer}/admin`], statusIdx: 0 });

      const endpoints: Array<[string, string, unknown?]> = [
        ['GET', `/users/${ALICE}`],
        ['GET', `/users/${aliceId}/sessions`],
        ['DELETE', `/sessions/${fid}`],
        ['POST', `/users/${ALICE}/logout-everywhere`],
        ['POST', `/clients/${app.clientId}/revoke-sessions`],
        ['POST', `/users/${ALICE}/disable`],
        ['POST', `/users/${ALICE}/enable`],
        ['PUT', `/users/${ALICE}/password`, { password: 'a brand new password' }],
        ['GET', `/audit?user=${ALICE}`],
      ];
      const unauthenticated: Array<[string, string | undefined]> = [
        ['no token', undefined],
        ['a garbage token', 'garbage'],
        ['a JWT-shaped garbage token', 'a.b.c'],
        ["a normal client's user access token (wrong audience)", tokens.access_token],
        ["a machine client's token (wrong audience)", machine.body.access_token as string],
        ["an ID token", tokens.id_token!],
        ['an expired admin token', expired.token],
      ];
      const forbidden: Array<[string, string]> = [
        ['the admin audience without latchkey:admin (admin client)', noAdminScope.body.access_token as string],
        ['the admin audience without latchkey:admin (normal client)', squatterToken.body.access_token as string],
        // not obtainable through the API (--scopes latchkey:admin is refused), signed directly
        ['latchkey:admin held by a non-admin client', nonAdminWithScope],
        // an admin client's token on behalf of a user (not client_credentials)
        ['a user-delegated admin token', userDelegated],
      ];
      for (const [method, path, body] of endpoints) {
        for (const [what, token] of unauthenticated) {
          const r = await api(method, path, token, body);
          t.equal(r.status, 401, `${method} ${path}: ${what} → 401`);
          t.match(r.headers.get('www-authenticate') ?? '', /^Bearer /, `${method} ${path}: ${what} → WWW-Authenticate`);
          t.equal(r.body.error, 'invalid_token');
          if (token === undefined) t.notMatch(r.headers.get('www-authenticate') ?? '', /error=/, 'RFC 6750 §3.1: no error code without a token');
          else t.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
        }
        for (const [what, token] of forbidden) {
          const r = await api(method, path, token, body);
          t.equal(r.status, 403, `${method} ${path}: ${what} → 403`);
          t.equal(r.body.error, 'insufficient_scope');
          t.match(r.headers.get('www-authenticate') ?? '', /insufficient_scope/);
        }
      }
      // none of the refused calls changed anything
      const alice = await e.rt.db.selectFrom('users').select(['disabled', 'password_hash']).where('id', '=', aliceId).executeTakeFirstOrThrow();
      t.equal(alice.disabled, false, 'not disabled');
      t.equal(alice.password_hash, hashBefore, 'password unchanged');
      t.equal((await e.rt.db.selectFrom('refresh_families').select('id').where('revoked_at', 'is not', null).execute()).length, 0, 'no family revoked');
      t.equal(await userinfo(tokens.access_token), 200);
      t.equal((await refresh(tokens.refresh_token!)).status, 200);
      // (the setup's users and clients were created through the CLI, which audits each creation)
      t.equal((await e.rt.db.selectFrom('audit_events').select('id').where('type', 'like', 'admin.%').where('type', 'not like', 'admin.%_created').execute()).length, 0, 'no admin audit event');
    });

    await t.test('GET /admin/users/:user', async (t) => {
      for (const ref of [ALICE, ALICE.toUpperCase(), aliceId]) {
        const r = await api('GET', `/users/${encodeURIComponent(ref)}`, ADMIN);
        t.equal(r.status, 200, ref);
        t.equal(r.body.id, aliceId);
        t.equal(r.body.email, ALICE);
        t.equal(r.body.disabled, false);
        t.notOk('password_hash' in r.body, 'never the password hash');
        t.equal(r.headers.get('cache-control'), 'no-store');
      }
      for (const ref of ['nobody@example.com', '00000000-0000-4000-8000-000000000000', 'not an email', '%00', 'x'.repeat(150)]) {
        const r = await api('GET', `/users/${encodeURIComponent(ref)}`, ADMIN);
        t.equal(r.status, 404, `unknown user ${ref.slice(0, 20)} → 404`);
        t.equal(r.body.error, 'not_found');
      }
      const long = await api('GET', `/users/${'x'.repeat(400)}`, ADMIN);
      t.ok(long.status >= 400 && long.status < 500, `an over-long user → 4xx (${long.status})`);
    });

    await t.test('GET /admin/users/:user/sessions and DELETE /admin/sessions/:family', async (t) => {
      const before = (await api('GET', `/users/${ALICE}/sessions`, ADMIN)).body.sessions as unknown[];
      const a = await login();
      const b = await login('openid offline_access', undefined, ALICE, PW, app2);
      const bobs = await login(undefined, undefined, BOB, BOB_PW);
      e.clock.advance(120);
      const rotated = await refresh(a.tokens.refresh_token!);
      t.equal(rotated.status, 200);

      const r = await api('GET', `/users/${ALICE}/sessions`, ADMIN);
      t.equal(r.status, 200);
      const sessions = r.body.sessions as Array<Record<string, unknown>>;
      t.equal(sessions.length, before.length + 2, "alice's two new families (not bob's)");
      const fa = familyOf(a.tokens.access_token);
      const fb = familyOf(b.tokens.access_token);
      const sa = sessions.find((s) => s.id === fa)!;
      const sb = sessions.find((s) => s.id === fb)!;
      t.ok(sa && sb, 'both listed by family id');
      t.equal(sa.client_id, app.clientId);
      t.equal(sb.client_id, app2.clientId);
      t.equal(sa.user_id, aliceId);
      t.ok(Date.parse(sa.created_at as string), 'created');
      t.ok(Date.parse(sa.last_used_at as string) > Date.parse(sa.created_at as string), 'last used moves with a refresh');
      t.equal(sb.last_used_at, sb.created_at);
      t.equal(sa.created_ip, '127.0.0.1', 'origin: IP');
      t.type(sa.created_user_agent, 'string', 'origin: user agent');
      t.notOk(sessions.some((s) => s.id === familyOf(bobs.tokens.access_token)), "not bob's family");
      t.notOk(JSON.stringify(sessions).includes(a.tokens.refresh_token!), 'no token in the listing');
      t.same((await api('GET', `/users/${aliceId}/sessions`, ADMIN)).body, r.body, 'by id too');
      t.equal((await api('GET', '/users/nobody@example.com/sessions', ADMIN)).status, 404);

      const del = await api('DELETE', `/sessions/${fa}`, ADMIN);
      t.equal(del.status, 200);
      t.same(del.body, { id: fa, revoked: true, already_revoked: false });
      t.equal((await refresh(rotated.body.refresh_token as string)).body.error, 'invalid_grant', 'the family’s refresh token is dead');
      t.equal(await userinfo(rotated.body.access_token as string), 401, 'its access tokens are denylisted');
      t.equal(await userinfo(a.tokens.access_token), 401);
      t.equal((await introspect(rotated.body.access_token as string)).active, false);
      t.equal((await refresh(b.tokens.refresh_token!, app2)).status, 200, 'the other family lives');
      t.equal((await refresh(bobs.tokens.refresh_token!)).status, 200, "bob's lives");
      const after = (await api('GET', `/users/${ALICE}/sessions`, ADMIN)).body.sessions as Array<Record<string, unknown>>;
      t.notOk(after.some((s) => s.id === fa), 'gone from the list');
      t.same((await api('DELETE', `/sessions/${fa}`, ADMIN)).body, { id: fa, revoked: true, already_revoked: true }, 'idempotent');
      const audit = await e.rt.db.selectFrom('audit_events').selectAll().where('type', '=', 'admin.session_revoked').execute();
      t.equal(audit.length, 2);
      t.equal(audit[0]!.actor, `client:${admin.clientId}`);

      // malformed family ids: 4xx JSON, never 5xx
      for (const bad of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', '0123456789abcdef0123456789abcdef0123', '-'.repeat(36), `${fa}x`, "1'; DROP TABLE x; --"]) {
        const res = await api('DELETE', `/sessions/${encodeURIComponent(bad)}`, ADMIN);
        t.ok(res.status >= 400 && res.status < 500, `family ${bad} → 4xx (${res.status})`);
        t.type(res.body.error, 'string', 'a JSON error');
      }
      t.equal((await api('DELETE', '/sessions/00000000-0000-4000-8000-000000000000', ADMIN)).status, 404, 'an unknown family → 404');
    });

    await t.test('POST /admin/users/:user/logout-everywhere', async (t) => {
      const a = await login();
      const b = await login('openid', a.browser);
      const bobs = await login(undefined, undefined, BOB, BOB_PW);
      t.equal(await authorizeState(a.browser), 'sso');
      const r = await api('POST', `/users/${ALICE}/logout-everywhere`, ADMIN);
      t.equal(r.status, 200);
      t.equal(r.body.user_id, aliceId);
      t.ok((r.body.families_revoked as number) >= 2, 'families revoked');
      t.ok((r.body.sessions_ended as number) >= 1, 'login sessions ended');
      t.equal(await authorizeState(a.browser), 'login', 'the SSO session is over');
      for (const s of [a.tokens, b.tokens]) {
        t.equal(await userinfo(s.access_token), 401);
        t.equal((await refresh(s.refresh_token!)).body.error, 'invalid_grant');
      }
      t.equal((await refresh(bobs.tokens.refresh_token!)).status, 200, "bob's session is untouched");
      t.same((await api('GET', `/users/${ALICE}/sessions`, ADMIN)).body, { sessions: [] });
      t.equal((await api('POST', '/users/nobody@example.com/logout-everywhere', ADMIN)).status, 404);
    });

    await t.test('POST /admin/clients/:client_id/revoke-sessions', async (t) => {
      const a = await login();
      const bobs = await login(undefined, undefined, BOB, BOB_PW);
      const other = await login('openid offline_access', undefined, ALICE, PW, app2);
      const r = await api('POST', `/clients/${app.clientId}/revoke-sessions`, ADMIN);
      t.equal(r.status, 200);
      t.equal(r.body.client_id, app.clientId);
      t.ok((r.body.families_revoked as number) >= 2);
      for (const s of [a.tokens, bobs.tokens]) {
        t.equal(await userinfo(s.access_token), 401, "the client's tokens are revoked, for every user");
        t.equal((await refresh(s.refresh_token!)).body.error, 'invalid_grant');
      }
      t.equal((await refresh(other.tokens.refresh_token!, app2)).status, 200, "another client's family lives");
      const unknown = await api('POST', '/clients/no-such-client/revoke-sessions', ADMIN);
      t.equal(unknown.status, 404);
      t.equal(unknown.body.error, 'not_found');
    });

    await t.test('POST /admin/users/:user/disable and /enable', async (t) => {
      const a = await login();
      t.equal(await authorizeState(a.browser), 'sso');
      const r = await api('POST', `/users/${ALICE}/disable`, ADMIN);
      t.equal(r.status, 200);
      t.equal(r.body.disabled, true);
      t.ok((r.body.families_revoked as number) >= 1);
      t.ok((r.body.sessions_ended as number) >= 1);
      t.equal(await userinfo(a.tokens.access_token), 401, 'access tokens 401 at userinfo');
      t.equal((await introspect(a.tokens.access_token)).active, false);
      t.equal((await refresh(a.tokens.refresh_token!)).body.error, 'invalid_grant', 'refresh tokens dead');
      t.equal(await authorizeState(a.browser), 'login', 'the login session is ended');
      t.equal(await canLogIn(ALICE, PW), false, 'a disabled user cannot log in');
      t.equal((await api('GET', `/users/${ALICE}`, ADMIN)).body.disabled, true);
      t.equal((await e.rt.db.selectFrom('login_sessions').select('sid').where('user_id', '=', aliceId).where('ended_at', 'is', null).execute()).length, 0);

      const en = await api('POST', `/users/${ALICE}/enable`, ADMIN);
      t.equal(en.status, 200);
      t.equal(en.body.disabled, false);
      t.equal((await api('GET', `/users/${ALICE}`, ADMIN)).body.disabled, false);
      t.equal(await canLogIn(ALICE, PW), true, 'enabled: logs in again');
      t.equal((await refresh(a.tokens.refresh_token!)).body.error, 'invalid_grant', 'enabling does not resurrect revoked families');
      t.equal((await api('POST', '/users/nobody@example.com/disable', ADMIN)).status, 404);
      t.equal((await api('POST', '/users/nobody@example.com/enable', ADMIN)).status, 404);
    });

    await t.test('PUT /admin/users/:user/password', async (t) => {
      const a = await login();
      const NEW = 'alice new password 2';
      const bad: Array<[string, unknown, string?]> = [
        ['too short', { password: 'short' }],
        ['missing', {}],
        ['not a string', { password: 12345678 }],
        ['an extra field', { password: NEW, admin: true }],
        ['too long', { password: 'x'.repeat(2000) }],
      ];
      for (const [what, body] of bad) {
        const r = await api('PUT', `/users/${ALICE}/password`, ADMIN, body);
        t.equal(r.status, 400, `${what} → 400`);
        t.type(r.body.error, 'string');
      }
      const notJson = await fetch(`${issuer}/admin/users/${ALICE}/password`, { method: 'PUT', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{"password":' });
      t.equal(notJson.status, 400, 'broken JSON → 400');
      t.equal(await userinfo(a.tokens.access_token), 200, 'the refused requests changed nothing');

      const r = await api('PUT', `/users/${ALICE}/password`, ADMIN, { password: NEW });
      t.equal(r.status, 200);
      t.equal(r.body.user_id, aliceId);
      t.ok((r.body.families_revoked as number) >= 1);
      t.ok((r.body.sessions_ended as number) >= 1);
      t.notOk(JSON.stringify(r.body).includes(NEW), 'the password is not echoed');
      t.equal(await userinfo(a.tokens.access_token), 401, 'access tokens revoked');
      t.equal((await refresh(a.tokens.refresh_token!)).body.error, 'invalid_grant', 'families revoked');
      t.equal(await authorizeState(a.browser), 'login', 'login session ended');
      t.equal(await canLogIn(ALICE, PW), false, 'the old password no longer logs in');
      t.equal(await canLogIn(ALICE, NEW), true, 'the new one does');
      t.notOk(e.logs().includes(NEW), 'the password never reaches a log line');
      t.equal((await api('PUT', '/users/nobody@example.com/password', ADMIN, { password: NEW })).status, 404);
    });

    await t.test('GET /admin/audit', async (t) => {
      // the clock stands still unless moved: move it so that `since` separates what follows
      e.clock.advance(1);
      const mark = new Date(e.clock.now()).toISOString();
      t.equal((await api('POST', `/users/${BOB}/disable`, ADMIN)).status, 200);
      t.equal((await api('POST', `/users/${BOB}/enable`, ADMIN)).status, 200);

      const all = await api('GET', '/audit', ADMIN);
      t.equal(all.status, 200);
      const events = all.body.events as Array<Record<string, unknown>>;
      t.ok(events.length > 5);
      t.ok(events.every((ev, i) => i === 0 || Date.parse(ev.at as string) <= Date.parse(events[i - 1]!.at as string)), 'newest first');

      const byUser = (await api('GET', `/audit?user=${BOB}`, ADMIN)).body.events as Array<Record<string, unknown>>;
      t.ok(byUser.length >= 2);
      t.ok(byUser.every((ev) => ev.user_id === bobId), 'filtered by user (email)');
      t.same((await api('GET', `/audit?user=${bobId}`, ADMIN)).body.events, byUser, 'filtered by user (id)');

      const disabled = (await api('GET', `/audit?user=${encodeURIComponent(ALICE)}&type=admin.user_disabled`, ADMIN)).body.events as Array<Record<string, unknown>>;
      t.equal(disabled.length, 1, 'filtered by user and type');
      t.equal(disabled[0]!.actor, `client:${admin.clientId}`, 'the actor is the admin client');
      t.equal(disabled[0]!.ip, '127.0.0.1', 'the IP');
      t.equal(disabled[0]!.user_id, aliceId);

      const since = (await api('GET', `/audit?since=${encodeURIComponent(mark)}`, ADMIN)).body.events as Array<Record<string, unknown>>;
      t.same(since.map((ev) => ev.type).sort(), ['admin.user_disabled', 'admin.user_enabled'], 'filtered by time');
      const sinceTyped = (await api('GET', `/audit?type=admin.user_enabled&since=${encodeURIComponent(mark)}`, ADMIN)).body.events as Array<Record<string, unknown>>;
      t.equal(sinceTyped.length, 1);
      t.equal(sinceTyped[0]!.user_id, bobId);
      const future = await api('GET', `/audit?since=${encodeURIComponent(new Date(e.clock.now() + 86400_000).toISOString())}`, ADMIN);
      t.same(future.body, { events: [] });
      t.equal(((await api('GET', '/audit?limit=1', ADMIN)).body.events as unknown[]).length, 1, 'limit');
      t.same((await api('GET', '/audit?type=no.such.type', ADMIN)).body, { events: [] });
      t.same((await api('GET', '/audit?user=00000000-0000-4000-8000-000000000000', ADMIN)).body, { events: [] });
      const logins = (await api('GET', `/audit?type=login.failure`, ADMIN)).body.events as Array<Record<string, unknown>>;
      t.ok(logins.length >= 1, 'failed logins are audited');
      t.notOk(JSON.stringify(logins).includes(PW), 'without the password');

      for (const q of ['since=yesterday', 'until=soon', 'limit=abc', 'limit=-1', 'limit=99999', 'user=nobody@example.com', `since=${encodeURIComponent('-100000-01-01T00:00:00Z')}`, `since=${encodeURIComponent('+275760-09-13T00:00:00.000Z')}`, `type=${'x'.repeat(200)}`]) {
        const r = await api('GET', `/audit?${q}`, ADMIN);
        t.ok(r.status >= 400 && r.status < 500, `${q.slice(0, 40)} → 4xx (${r.status})`);
        t.type(r.body.error, 'string');
      }
    });

    await t.test('the admin token itself can be revoked', async (t) => {
      const fresh = (await adminToken(admin, 'latchkey:admin')).body.access_token as string;
      t.equal((await api('GET', `/users/${ALICE}`, fresh)).status, 200);
      const rev = await postForm(`${issuer}/revoke`, { token: fresh }, { clientId: admin.clientId, secret: admin.clientSecret });
      t.equal(rev.status, 200);
      const r = await api('GET', `/users/${ALICE}`, fresh);
      t.equal(r.status, 401, 'a revoked admin token → 401');
      t.match(r.headers.get('www-authenticate') ?? '', /invalid_token/);
      // issue 23 finding 4: a client_credentials token shares its client's status index with its
      // siblings, so revoking one refuses those issued before the revoke too; a new one works
      t.equal((await api('GET', `/users/${ALICE}`, ADMIN)).status, 401, 'a sibling issued before the revoke is refused too');
      const after = (await adminToken(admin, 'latchkey:admin')).body.access_token as string;
      t.equal((await api('GET', `/users/${ALICE}`, after)).status, 200, 'an admin token issued after the revoke works');
    });

    await t.test('the CLI refuses --scopes latchkey:admin', async (t) => {
      await t.rejects(cli(e.rt, ['clients', 'create', '--name', 'Sneaky', '--grant-types', 'client_credentials', '--scopes', 'latchkey:admin']), /reserved/);
      await t.rejects(cli(e.rt, ['clients', 'create', '--name', 'Sneaky', '--grant-types', 'client_credentials', '--scopes', 'jobs latchkey:admin']), /reserved/);
      await t.rejects(cli(e.rt, ['clients', 'create', '--name', 'Sneaky', '--admin', '--public']), /confidential/);
      t.equal((await e.rt.db.selectFrom('clients').select('client_id').where('name', '=', 'Sneaky').execute()).length, 0, 'no client created');
    });
  });
}

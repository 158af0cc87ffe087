// /authorize reads login sessions (and their users) from in-process caches. A change to a session
// or its user by any path (here: plain SQL, as an operator would) reaches every replica through
// the triggers' NOTIFY: the test clock is frozen, so the caches' time limit never expires an entry
// and only the invalidation can make a change visible. A code issued from a session that has just
// ended elsewhere is refused at /token, which checks the session in the database.
import t, { type Test } from 'tap';
import { sql } from 'kysely';
import { backends, dropCreatedDatabases, type Backend } from '../helpers/backends.js';
import { eventually, startReplicas } from '../helpers/replicas.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { authorizationUrl, authorizeState, loginAndRedeem, pkce, tokenRequest } from '../helpers/flow.js';
import { Browser, parseForm } from '../helpers/http-login.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

async function run(t: Test, backend: Backend): Promise<void> {
  const { a, urls } = await startReplicas(t, backend);
  const issuer = a.config.issuer;

  const userId = await createUser(a.rt, 'sam@example.com', 'sam password 1');
  const app = await createClient(a.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid']);
  const login = () => loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'sam@example.com', password: 'sam password 1', scope: 'openid' });
  const state = (browser: Awaited<ReturnType<typeof login>>['browser'], url: string) => authorizeState(browser, url, app.clientId, REDIRECT);
  await t.test('a session ended by plain SQL ends SSO on every replica', async (t) => {
    const { browser } = await login();
    for (const url of urls) t.equal(await state(browser, url), 'sso', `SSO on ${url} (the session is now cached)`);
    await sql`UPDATE login_sessions SET ended_at = now() WHERE user_id = ${userId}::uuid AND ended_at IS NULL`.execute(a.rt.db);
    for (const url of urls) t.ok(await eventually(async () => (await state(browser, url)) === 'login'), `${url} asks for a login again, with the clock frozen`);
  });

  await t.test('a session deleted by plain SQL ends SSO on every replica', async (t) => {
    const { browser } = await login();
    for (const url of urls) t.equal(await state(browser, url), 'sso');
    await sql`DELETE FROM login_sessions WHERE user_id = ${userId}::uuid AND ended_at IS NULL`.execute(a.rt.db);
    for (const url of urls) t.ok(await eventually(async () => (await state(browser, url)) === 'login'), `${url} forgot the deleted session`);
  });

  await t.test('a user disabled by plain SQL loses SSO on every replica; enabled, the session serves again', async (t) => {
    const { browser } = await login();
    for (const url of urls) t.equal(await state(browser, url), 'sso');
    await sql`UPDATE users SET disabled = true WHERE id = ${userId}::uuid`.execute(a.rt.db);
    for (const url of urls) t.ok(await eventually(async () => (await state(browser, url)) === 'login'), `${url}: no SSO for a disabled user`);
    await sql`UPDATE users SET disabled = false WHERE id = ${userId}::uuid`.execute(a.rt.db);
    for (const url of urls) t.ok(await eventually(async () => (await state(browser, url)) === 'sso'), `${url}: SSO again`);
  });

  await t.test('a code issued from a session that ended before the redemption is refused', async (t) => {
    const { browser } = await login();
    const { verifier, challenge } = pkce();
    const step = await browser.get(authorizationUrl(urls.at(-1)!, app.clientId, REDIRECT, { code_challenge: challenge }));
    const code = new URL(step.location!).searchParams.get('code');
    t.ok(code, 'SSO gave a code');
    await sql`UPDATE login_sessions SET ended_at = now() WHERE user_id = ${userId}::uuid AND ended_at IS NULL`.execute(a.rt.db);
    const r = await tokenRequest(issuer, { grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT, code_verifier: verifier }, { clientId: app.clientId, secret: app.clientSecret });
    t.equal(r.status, 400);
    t.equal(r.body.error, 'invalid_grant');
    t.equal(r.body.error_description, 'the login session has ended');
  });

  await t.test('logout on one replica ends the session on every replica, even for a copy of its cookie', async (t) => {
    const { browser } = await login();
    for (const url of urls) t.equal(await state(browser, url), 'sso');
    const copy = new Browser(issuer, browser.jar.clone());
    const page = await browser.get(`${urls[0]}/logout`);
    const { action, fields } = parseForm(page.body);
    t.ok(fields.csrf, 'the logout confirmation page');
    const done = await browser.post(action.replace(issuer, urls[0]!), { ...fields, logout: 'yes' }, { origin: issuer });
    t.ok(done.status < 400, `logged out (${done.status})`);
    t.equal(await state(browser, urls[0]!), 'login', 'the browser that logged out');
    t.equal(await state(copy, urls[0]!), 'login', 'the copied cookie, at once on the replica that logged out');
    for (const url of urls.slice(1)) t.ok(await eventually(async () => (await state(copy, url)) === 'login'), `the copied cookie on ${url}`);
  });
}

for (const backend of backends()) {
  t.test(`login-session changes reach the cache of every replica (${backend.name})`, (t) => run(t, backend));
}

// RP-Initiated Logout 1.0 at /logout: with a valid id_token_hint, without one (a CSRF-protected
// confirmation page), with an unregistered post_logout_redirect_uri and with a bad hint. Logout ends
// the SSO session and the families created in it without offline_access (OIDC Core §11); offline
// access outlives the login.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, tokenRequest, type TokenSet, authorizeState as authorizeStateAt } from '../helpers/flow.js';
import { Browser, parseForm, type Step } from '../helpers/http-login.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const POST_LOGOUT = 'http://127.0.0.1:9999/bye';
const EMAIL = 'lou@example.com';
const PASSWORD = 'lou password 1';

const refresh = (e: TestEnv, c: TestClient, rt: string) =>
  tokenRequest(e.config.issuer, { grant_type: 'refresh_token', refresh_token: rt }, { clientId: c.clientId, secret: c.clientSecret });
const userinfo = async (e: TestEnv, at: string) => (await fetch(`${e.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status;

function logoutUrl(e: TestEnv, params: Record<string, string>): string {
  const u = new URL(`${e.config.issuer}/logout`);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.href;
}

for (const backend of backends()) {
  t.test(`logout on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    await createUser(e.rt, EMAIL, PASSWORD);
    // --refresh-without-offline: families without offline_access get refresh tokens too
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', POST_LOGOUT, '--first-party', '--refresh-without-offline', '--scopes', 'openid profile offline_access']);
    const other = await createClient(e.rt, ['--name', 'Other', '--redirect-uri', REDIRECT, '--first-party']);

    const login = async (browser: Browser, scope: string): Promise<TokenSet> =>
      (await loginAndRedeem({ issuer: e.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: EMAIL, password: PASSWORD, scope, browser })).tokens;

    const authorizeState = (browser: Browser) => authorizeStateAt(browser, e.config.issuer, app.clientId, REDIRECT);
    const liveSessions = async () => (await e.rt.db.selectFrom('login_sessions').select('sid').where('ended_at', 'is', null).execute()).length;

    await t.test('with a valid id_token_hint and a registered post_logout_redirect_uri', async (t) => {
      const browser = new Browser(e.config.issuer);
      const online = await login(browser, 'openid profile');
      t.ok(online.refresh_token, '--refresh-without-offline: a refresh token without offline_access');
      const offline = await login(browser, 'openid offline_access');
      t.ok(offline.refresh_token);
      t.match(offline.scope, /offline_access/);
      const fams = await e.rt.db.selectFrom('refresh_families').select(['offline', 'session_sid']).execute();
      t.equal(fams.length, 2);
      t.equal(fams[0]!.session_sid, fams[1]!.session_sid, 'both families come from the same login session (SSO)');
      // a third family, from another browser's session: logout here must not touch it
      const elsewhere = await login(new Browser(e.config.issuer), 'openid');

      const step = await browser.get(logoutUrl(e, { id_token_hint: online.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye-state' }));
      t.equal(step.status, 303);
      const loc = new URL(step.location!);
      t.equal(`${loc.origin}${loc.pathname}`, POST_LOGOUT, 'redirected to the registered URI');
      t.equal(loc.searchParams.get('state'), 'bye-state', 'with the state');

      t.equal(await authorizeState(browser), 'login', 'the SSO session is over: /authorize shows the login page');
      t.equal(await userinfo(e, online.access_token), 401, "the online family's access token is revoked");
      t.equal((await refresh(e, app, online.refresh_token!)).body.error, 'invalid_grant', "the online family's refresh token is revoked");
      const r = await refresh(e, app, offline.refresh_token!);
      t.equal(r.status, 200, 'the offline_access family survives the logout');
      t.equal(await userinfo(e, r.body.access_token as string), 200);
      t.equal(await userinfo(e, elsewhere.access_token), 200, "another browser's session is untouched");
      t.equal((await refresh(e, app, elsewhere.refresh_token!)).status, 200);
      const audit = await e.rt.db.selectFrom('audit_events').selectAll().where('type', '=', 'logout').execute();
      t.equal(audit.length, 1, 'a logout audit event');
    });

    await t.test('without a hint: a confirmation page with a CSRF-protected form', async (t) => {
      const browser = new Browser(e.config.issuer);
      const tokens = await login(browser, 'openid');
      const page = await browser.get(logoutUrl(e, {}));
      t.equal(page.status, 200);
      t.match(page.body, /name="logout"/);
      const { action, fields } = parseForm(page.body);
      t.ok(fields.csrf, 'the form carries a csrf token');
      t.equal(action, `${e.config.issuer}/logout`);

      // a bad csrf: refused, still logged in
      const forged = await browser.post(action, { ...fields, csrf: 'x'.repeat(fields.csrf!.length), logout: 'yes' });
      t.equal(forged.status, 403);
      t.equal(await authorizeState(browser), 'sso', 'a forged form leaves the session alone');
      t.equal(await userinfo(e, tokens.access_token), 200);
      // the right csrf from another origin: refused too
      const crossSite = await browser.post(action, { ...fields, logout: 'yes' }, { origin: 'http://evil.example' });
      t.equal(crossSite.status, 403, 'a cross-origin POST is refused');
      t.equal(await authorizeState(browser), 'sso');
      // "stay signed in"
      const stay = await browser.post(action, { ...fields, logout: 'no' });
      t.equal(stay.status, 200);
      t.equal(await authorizeState(browser), 'sso', '"no" keeps the session');

      const done = await browser.post(action, { ...fields, logout: 'yes' });
      t.equal(done.status, 200, 'no post_logout_redirect_uri: a signed-out page');
      t.match(done.body, /signed out/i);
      t.equal(await authorizeState(browser), 'login', 'logged out');
      t.equal(await userinfo(e, tokens.access_token), 401, 'the session’s online family is revoked');
    });

    await t.test('without a hint but with client_id and post_logout_redirect_uri: confirm, then redirect', async (t) => {
      const browser = new Browser(e.config.issuer);
      await login(browser, 'openid');
      const page = await browser.get(logoutUrl(e, { client_id: app.clientId, post_logout_redirect_uri: POST_LOGOUT, state: 'abc' }));
      t.equal(page.status, 200);
      const { action, fields } = parseForm(page.body);
      t.equal(fields.post_logout_redirect_uri, POST_LOGOUT);
      const done = await browser.post(action, { ...fields, logout: 'yes' });
      t.equal(done.status, 303);
      t.equal(done.location, `${POST_LOGOUT}?state=abc`);
      t.equal(await authorizeState(browser), 'login');
    });

    await t.test('an unregistered post_logout_redirect_uri: an error page, no redirect, the session intact', async (t) => {
      const browser = new Browser(e.config.issuer);
      const tokens = await login(browser, 'openid');
      const sessionsBefore = await liveSessions();
      const bad: Step[] = [
        await browser.get(logoutUrl(e, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'https://evil.example/bye', state: 's' })),
        await browser.get(logoutUrl(e, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: `${POST_LOGOUT}/more` })),
        await browser.get(logoutUrl(e, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: `${POST_LOGOUT}?x=1` })),
        // registered for App, not for Other
        await browser.get(logoutUrl(e, { client_id: other.clientId, post_logout_redirect_uri: POST_LOGOUT })),
        // no client at all: nothing to match against
        await browser.get(logoutUrl(e, { post_logout_redirect_uri: POST_LOGOUT })),
      ];
      for (const [i, s] of bad.entries()) {
        t.equal(s.status, 400, `case ${i}: 400`);
        t.equal(s.location, undefined, `case ${i}: no redirect`);
        t.match(s.res.headers.get('content-type') ?? '', /text\/html/, `case ${i}: an error page`);
        t.notMatch(s.body, /evil\.example/, `case ${i}: the page does not link to the bad URI`);
      }
      t.equal(await liveSessions(), sessionsBefore, 'no session ended');
      t.equal(await authorizeState(browser), 'sso', 'still logged in');
      t.equal(await userinfo(e, tokens.access_token), 200, 'tokens intact');
    });

    await t.test("a hint for another user than the browser's asks first", async (t) => {
      await createUser(e.rt, 'max@example.com', 'max password 1');
      const maxTokens = (await loginAndRedeem({ issuer: e.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'max@example.com', password: 'max password 1', scope: 'openid' })).tokens;
      const browser = new Browser(e.config.issuer);
      const mine = await login(browser, 'openid');
      const page = await browser.get(logoutUrl(e, { id_token_hint: maxTokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 's' }));
      t.equal(page.status, 200, 'a confirmation page, not a silent logout');
      t.match(page.body, /name="logout"/);
      t.equal(await authorizeState(browser), 'sso', 'still logged in');
      t.equal(await userinfo(e, mine.access_token), 200);
      t.equal(await userinfo(e, maxTokens.access_token), 200, "the hint's user is not logged out by someone else's browser");
      const { action, fields } = parseForm(page.body);
      const done = await browser.post(action, { ...fields, logout: 'yes' });
      t.equal(done.status, 303, 'confirmed: logged out and redirected');
      t.equal(done.location, `${POST_LOGOUT}?state=s`);
      t.equal(await authorizeState(browser), 'login');
    });

    await t.test('an invalid id_token_hint: 400', async (t) => {
      const browser = new Browser(e.config.issuer);
      const tokens = await login(browser, 'openid');
      const [h, p, s] = tokens.id_token!.split('.');
      const tampered = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
      tampered.sub = '00000000-0000-4000-8000-000000000000';
      const cases = {
        garbage: 'not-a-jwt',
        'bad signature': `${h}.${p}.${s!.slice(0, -4)}AAAA`,
        'tampered payload': `${h}.${Buffer.from(JSON.stringify(tampered)).toString('base64url')}.${s}`,
        'alg none': `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`,
        'an access token': tokens.access_token,
      };
      for (const [what, hint] of Object.entries(cases)) {
        const step = await browser.get(logoutUrl(e, { id_token_hint: hint, post_logout_redirect_uri: POST_LOGOUT }));
        t.equal(step.status, 400, what);
        t.equal(step.location, undefined, `${what}: no redirect`);
      }
      // a valid hint whose client_id disagrees
      const mismatch = await browser.get(logoutUrl(e, { id_token_hint: tokens.id_token!, client_id: other.clientId }));
      t.equal(mismatch.status, 400, 'client_id not in the hint’s aud');
      t.equal(await authorizeState(browser), 'sso', 'still logged in');
      t.equal(await userinfo(e, tokens.access_token), 200);
    });
  });
}

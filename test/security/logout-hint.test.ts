// Issue 17 item 2 (RP-Initiated Logout 1.0 §2–3): an id_token_hint ends the session without a
// question only when it is current and was issued in this very login session (its sid and sub).
// An ID token of an earlier session, one without sid, or an expired one still identifies the RP
// (its post_logout_redirect_uri is honoured after confirmation) but shows the confirmation page.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { authorizeState, loginAndRedeem } from '../helpers/flow.js';
import { Browser, parseForm, type Step } from '../helpers/http-login.js';
import { findUserById } from '../../src/store/users.js';
import { signIdToken } from '../../src/tokens/id-token.js';
import { BACKCHANNEL_LOGOUT_EVENT, signLogoutToken } from '../../src/tokens/logout-token.js';
import { signJwt } from '../../src/tokens/access-token.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const BYE = 'http://127.0.0.1:9999/bye';
const EMAIL = 'sam@example.com';
const PASSWORD = 'sam password 1';

for (const backend of backends()) {
  t.test(`logout hints on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const userId = await createUser(e.rt, EMAIL, PASSWORD);
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', BYE, '--first-party', '--scopes', 'openid']);
    const login = async (browser: Browser, extra: Record<string, string> = {}) =>
      (await loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: EMAIL, password: PASSWORD, scope: 'openid', browser, extra })).tokens;
    const logout = (browser: Browser, hint: string) => {
      const u = new URL(`${issuer}/logout`);
      u.searchParams.set('id_token_hint', hint);
      u.searchParams.set('post_logout_redirect_uri', BYE);
      u.searchParams.set('state', 'st');
      return browser.get(u.href);
    };
    const state = (browser: Browser) => authorizeState(browser, issuer, app.clientId, REDIRECT);
    const liveSessions = async () => (await e.rt.db.selectFrom('login_sessions').select('sid').where('ended_at', 'is', null).execute()).length;
    /** The confirmation page, then "yes": logged out and sent to the RP's registered URI. */
    const confirmed = async (t: Tap, browser: Browser, page: Step) => {
      t.equal(page.status, 200, 'the confirmation page');
      t.match(page.body, /name="logout"/);
      t.equal(page.location, undefined, 'no redirect yet');
      const { action, fields } = parseForm(page.body);
      t.equal(fields.post_logout_redirect_uri, BYE, 'the hint still identified the RP');
      t.equal(fields.client_id, app.clientId);
      const done = await browser.post(action, { ...fields, logout: 'yes' });
      t.equal(done.status, 303, 'confirmed');
      t.equal(done.location, `${BYE}?state=st`);
      t.equal(await state(browser), 'login', 'logged out after confirming');
    };
    type Tap = typeof t;

    await t.test('an ID token from an earlier login session asks first', async (t) => {
      const browser = new Browser(issuer);
      const old = await login(browser);
      // a new login in the same browser: a new session (and sid); the old one ends
      await login(browser, { prompt: 'login' });
      const before = await liveSessions();
      const page = await logout(browser, old.id_token!);
      t.equal(await state(browser), 'sso', 'the current session is not ended by an old ID token');
      t.equal(await liveSessions(), before, 'no session ended');
      await confirmed(t, browser, page);
    });

    await t.test("an ID token of the same user from another browser's session asks first", async (t) => {
      const elsewhere = await login(new Browser(issuer));
      const browser = new Browser(issuer);
      await login(browser);
      const page = await logout(browser, elsewhere.id_token!);
      t.equal(await state(browser), 'sso', 'still logged in');
      await confirmed(t, browser, page);
    });

    await t.test('an expired ID token of this very session asks first', async (t) => {
      const browser = new Browser(issuer);
      const tokens = await login(browser);
      e.clock.advance(e.config.idTokenTtl + e.config.clockLeewaySeconds + 60);
      const page = await logout(browser, tokens.id_token!);
      t.equal(await state(browser), 'sso', 'still logged in');
      await confirmed(t, browser, page);
    });

    await t.test('an ID token without sid asks first', async (t) => {
      const browser = new Browser(issuer);
      const tokens = await login(browser);
      const user = (await findUserById(e.rt.db, userId))!;
      const noSid = await signIdToken(e.rt, { clientId: app.clientId, alg: 'RS256', user, scopes: ['openid'], authTime: Math.floor(e.clock.now() / 1000), sid: null, accessToken: tokens.access_token });
      const page = await logout(browser, noSid);
      t.equal(await state(browser), 'sso', 'still logged in');
      await confirmed(t, browser, page);
    });

    // issue 23, finding 9: a back-channel logout token of this very session (same iss, aud, sub,
    // sid, signed by our key) is no ID token: it is refused as a hint, and the session stays
    await t.test('a logout token, or a JWT with an events claim, is not an id_token_hint', async (t) => {
      const browser = new Browser(issuer);
      await login(browser);
      const row = await e.rt.db.selectFrom('login_sessions').select('sid').where('user_id', '=', userId).where('ended_at', 'is', null).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
      const logoutToken = await signLogoutToken(e.rt, { clientId: app.clientId, alg: 'RS256', jti: 'lt-1', sub: userId, sid: row.sid });
      const key = e.rt.keystore.signingKey('RS256');
      const now = Math.floor(e.clock.now() / 1000);
      const withEvents = await signJwt(
        { iss: issuer, aud: app.clientId, sub: userId, sid: row.sid, iat: now, exp: now + 300, events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } },
        { alg: key.alg, kid: key.kid, typ: 'JWT' },
        key.privateKey,
      );
      for (const [name, hint] of [['a logout token (typ logout+jwt)', logoutToken], ['typ JWT with events', withEvents]] as const) {
        const before = await liveSessions();
        const step = await logout(browser, hint);
        t.equal(step.status, 400, `${name}: refused as a hint`);
        t.equal(step.location, undefined, `${name}: no redirect`);
        t.equal(await liveSessions(), before, `${name}: no session ended`);
        t.equal(await state(browser), 'sso', `${name}: still logged in`);
      }
    });

    await t.test('a current ID token of this session logs out without a question', async (t) => {
      const browser = new Browser(issuer);
      const tokens = await login(browser);
      const step = await logout(browser, tokens.id_token!);
      t.equal(step.status, 303);
      t.equal(step.location, `${BYE}?state=st`);
      t.equal(await state(browser), 'login', 'logged out');
    });
  });
}

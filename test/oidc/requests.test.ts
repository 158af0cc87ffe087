// Issue 11 (items 1–4, 8–10) and issue 17.6, through the HTTP server: unstorable bytes, the
// Bearer/Basic scheme case, id_token_hint, the claims parameter, acr/amr, ui_locales and friends,
// and an anonymous /authorize that writes nothing. Every error case checks that no row changed.
import t from 'tap';
import * as oidc from 'openid-client';
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { Browser, authorizeWithLogin, parseForm } from '../helpers/http-login.js';
import { authorizationUrl, basic, loginAndRedeem, postForm, tokenRequest } from '../helpers/flow.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { pruneExpired } from '../../src/store/pruning.js';
import { recordAudit } from '../../src/store/audit.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9/cb';
const PASSWORD = 'correct horse battery';
const TABLES = ['interactions', 'login_sessions', 'consents', 'refresh_families', 'refresh_tokens', 'audit_events', 'users', 'denylist'] as const;

for (const backend of backends()) {
  t.test(`OIDC requests on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const db = env.rt.db;
    const aliceId = await createUser(env.rt, 'alice@example.com', PASSWORD, ['--name', 'Alice']);
    const bobId = await createUser(env.rt, 'bob@example.com', PASSWORD);
    const rp = await createClient(env.rt, ['--name', 'RP', '--redirect-uri', REDIRECT, '--first-party']);
    const other = await createClient(env.rt, ['--name', 'Other', '--redirect-uri', REDIRECT, '--first-party']);
    const admin = await createClient(env.rt, ['--name', 'Admin', '--admin']);

    async function counts(): Promise<Record<string, number>> {
      const out: Record<string, number> = {};
      for (const table of TABLES) out[table] = Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
      return out;
    }
    const login = (email: string, extra: Record<string, string> = {}, browser?: Browser) =>
      loginAndRedeem({ issuer, clientId: rp.clientId, secret: rp.clientSecret, redirectUri: REDIRECT, email, password: PASSWORD, scope: 'openid', browser, extra });

    t.test('item 1: a NUL or a lone surrogate is invalid_request everywhere, and changes nothing', async (t) => {
      const { tokens, browser } = await login('alice@example.com');
      const adminToken = (await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin', resource: `${issuer}/admin` }, { clientId: admin.clientId, secret: admin.clientSecret })).body.access_token as string;
      const before = await counts();
      const authorize = await fetch(`${issuer}/authorize?client_id=abc%00def&response_type=code&redirect_uri=${encodeURIComponent(REDIRECT)}&scope=openid`);
      t.equal(authorize.status, 400, '/authorize: 400, not 500');
      t.match(await authorize.text(), /invalid_request/);
      t.match(authorize.headers.get('content-type'), /text\/html/, '/authorize answers with its error page');
      const postAuthorize = await postForm(`${issuer}/authorize`, { client_id: rp.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 'a\u0000b' });
      t.equal(postAuthorize.status, 400, 'POST /authorize: 400');
      for (const [path, form] of [
        ['/token', { grant_type: 'authorization_code', code: 'x', client_id: 'abc\u0000def' }],
        ['/token', { grant_type: 'refresh_token', refresh_token: 'x\u0000' }],
        ['/revoke', { token: 'x\u0000y', client_id: rp.clientId }],
        ['/introspect', { token: 'x\u0000y' }],
        ['/userinfo', { access_token: 'a\u0000b' }],
        ['/logout', { id_token_hint: 'a\u0000b' }],
        ['/par', { client_id: 'abc\u0000', response_type: 'code' }],
      ] as const) {
        const r = await postForm(`${issuer}${path}`, form, path === '/introspect' ? { clientId: rp.clientId, secret: rp.clientSecret } : undefined);
        t.equal(r.status, 400, `${path}: 400`);
        t.equal(r.body.error, 'invalid_request', `${path}: invalid_request`);
      }
      // a lone surrogate in a JSON body of the admin API
      const adminRes = await fetch(`${issuer}/admin/users/${aliceId}/password`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: '{"password":"correct horse \\ud800 battery"}',
      });
      t.equal(adminRes.status, 400, 'admin API: 400');
      t.equal(((await adminRes.json()) as { error: string }).error, 'invalid_request');
      const adminPath = await fetch(`${issuer}/admin/users/a%00b`, { headers: { authorization: `Bearer ${adminToken}` } });
      t.equal(adminPath.status, 400, 'admin API path parameter: 400');
      // the interaction form
      const page = await browser.follow(await browser.get(authorizationUrl(issuer, rp.clientId, REDIRECT, { prompt: 'login' })));
      const { action, fields } = parseForm(page.body);
      const form = await browser.post(action, { ...fields, username: 'alice\u0000@example.com', password: PASSWORD });
      t.equal(form.status, 400, 'the login form: 400');
      t.same(await counts(), before, 'no state changed');
      t.equal((await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status, 200, 'the session and its tokens still work');

      // the CLI's argument parser
      const cli = await runCommand(['users', 'create', '--email', 'eve\u0000@example.com', '--password-stdin'], cliContextFor(env.rt), `${PASSWORD}\n`);
      t.equal(cli.code, 2, 'the CLI refuses the argument');
      t.match(cli.stderr, /NUL/);
      t.same(await counts(), before, 'the CLI changed nothing');
    });

    t.test('item 3: the Bearer and Basic schemes are case-insensitive', async (t) => {
      const { tokens } = await login('alice@example.com');
      for (const scheme of ['bearer', 'BEARER', 'Bearer', 'bEaReR']) {
        const r = await fetch(`${issuer}/userinfo`, { headers: { authorization: `${scheme} ${tokens.access_token}` } });
        t.equal(r.status, 200, `userinfo with ${scheme}`);
      }
      const adminToken = (await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin', resource: `${issuer}/admin` }, { clientId: admin.clientId, secret: admin.clientSecret })).body.access_token as string;
      const r = await fetch(`${issuer}/admin/users/${aliceId}`, { headers: { authorization: `bearer ${adminToken}` } });
      t.equal(r.status, 200, 'admin API with bearer');
      const lower = basic(admin.clientId, admin.clientSecret!).replace(/^Basic/, 'basic');
      const cc = await fetch(`${issuer}/token`, { method: 'POST', headers: { authorization: lower, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&scope=latchkey%3Aadmin' });
      t.equal(cc.status, 200, 'client_secret_basic with basic');
      const bad = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearerx ${tokens.access_token}` } });
      t.equal(bad.status, 401, 'another scheme is still refused');
    });

    t.test('item 4: id_token_hint is verified; another user is not silently signed in', async (t) => {
      const alice = await login('alice@example.com');
      const bob = await login('bob@example.com');
      const hintUrl = (hint: string, extra: Record<string, string> = {}) => authorizationUrl(issuer, rp.clientId, REDIRECT, { id_token_hint: hint, ...extra });
      const jwks = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: Array<Record<string, string>> };
      const ours = jwks.keys.find((k) => k.alg === 'RS256')!;
      const claims = { iss: issuer, sub: aliceId, aud: rp.clientId, iat: Math.floor(env.clock.now() / 1000), exp: Math.floor(env.clock.now() / 1000) + 3600 };
      const attacker = await generateKeyPair('ES256', { extractable: true });
      const attackerJwk = await exportJWK(attacker.publicKey);
      const forged: Record<string, string> = {
        'alg none': new UnsecuredJWT(claims).encode(),
        'HS256 keyed with our public key': await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: ours.kid! }).sign(new TextEncoder().encode(JSON.stringify(ours))),
        'a jku': await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'evil', jku: 'http://127.0.0.1:9/jwks' }).sign(attacker.privateKey),
        'an embedded jwk': await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', jwk: attackerJwk }).sign(attacker.privateKey),
        'a kid of ../../x': await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: '../../x' }).sign(attacker.privateKey),
        'an access token': alice.tokens.access_token,
        'garbage': 'not-a-jwt',
      };
      const before = await counts();
      for (const [what, hint] of Object.entries(forged)) {
        const step = await alice.browser.get(hintUrl(hint, { prompt: 'none' }));
        t.equal(step.status, 303, `${what}: redirected`);
        const cb = new URL(step.location!);
        t.equal(cb.searchParams.get('error'), 'invalid_request', `${what}: invalid_request`);
        t.equal(cb.searchParams.get('code'), null, `${what}: no code`);
      }
      // a genuine ID token of another client is not a hint for this one
      const foreign = await loginAndRedeem({ issuer, clientId: other.clientId, secret: other.clientSecret, redirectUri: REDIRECT, email: 'alice@example.com', password: PASSWORD, scope: 'openid', browser: alice.browser });
      const before2 = await counts();
      const foreignStep = await alice.browser.get(hintUrl(foreign.tokens.id_token!, { prompt: 'none' }));
      t.equal(new URL(foreignStep.location!).searchParams.get('error'), 'invalid_request', "another client's ID token: invalid_request");
      // bob's genuine hint while alice is logged in
      const mismatch = await alice.browser.get(hintUrl(bob.tokens.id_token!, { prompt: 'none' }));
      t.equal(new URL(mismatch.location!).searchParams.get('error'), 'login_required', "another user's hint with prompt=none: login_required");
      const loginPage = await alice.browser.follow(await alice.browser.get(hintUrl(bob.tokens.id_token!)));
      t.equal(loginPage.status, 200, "another user's hint: the login page");
      t.match(loginPage.body, /name="password"/);
      t.match(loginPage.body, /value="bob@example.com"/, 'for the hinted user');
      t.same(await counts(), before2, 'no state changed');
      t.ok(before2.refresh_families >= before.refresh_families);
      // her own hint, even expired, gives her a code at once
      env.clock.advance(env.config.idTokenTtl + 60);
      const own = await alice.browser.get(hintUrl(alice.tokens.id_token!, { prompt: 'none' }));
      t.ok(new URL(own.location!).searchParams.get('code'), `an expired hint of the logged-in user is accepted (${own.location})`);
    });

    t.test('items 8 and 9: the claims parameter, acr and amr', async (t) => {
      const config = await oidc.discovery(new URL(issuer), rp.clientId, rp.clientSecret!, undefined, { execute: [oidc.allowInsecureRequests] });
      t.equal(config.serverMetadata().claims_parameter_supported, true);
      t.same(config.serverMetadata().acr_values_supported, ['urn:latchkey:acr:pwd']);
      const verifier = oidc.randomPKCECodeVerifier();
      const nonce = oidc.randomNonce();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        acr_values: 'urn:latchkey:acr:pwd urn:other',
        claims: JSON.stringify({ id_token: { email: null, email_verified: { essential: true }, favourite_colour: null, acr: { values: ['urn:latchkey:acr:pwd'] } }, userinfo: { name: null } }),
      });
      const step = await authorizeWithLogin(new Browser(issuer), url.href, 'alice@example.com', PASSWORD);
      const tokens = await oidc.authorizationCodeGrant(config, new URL(step.location!), { pkceCodeVerifier: verifier, expectedNonce: nonce });
      const c = tokens.claims()!;
      t.equal(c.email, 'alice@example.com', 'email asked for by name, without the email scope');
      t.equal(c.email_verified, false);
      t.equal(c.name, undefined, 'name was not asked for');
      t.equal(c.favourite_colour, undefined, 'unknown claims are ignored');
      t.same(c.amr, ['pwd'], 'amr');
      t.equal(c.acr, 'urn:latchkey:acr:pwd', 'acr');
      const info = await oidc.fetchUserInfo(config, tokens.access_token, c.sub);
      t.same(info, { sub: aliceId, name: 'Alice' }, 'userinfo: the claim asked for by name for userinfo, and only that one');

      const before = await counts();
      const browser = new Browser(issuer);
      const unmet = await browser.get(authorizationUrl(issuer, rp.clientId, REDIRECT, { claims: JSON.stringify({ id_token: { acr: { essential: true, values: ['urn:mace:incommon:iap:silver'] } } }) }));
      t.equal(new URL(unmet.location!).searchParams.get('error'), 'unmet_authentication_requirements', 'an essential acr we cannot meet');
      const malformed = await browser.get(authorizationUrl(issuer, rp.clientId, REDIRECT, { claims: '{"id_token": [1]}' }));
      t.equal(new URL(malformed.location!).searchParams.get('error'), 'invalid_request', 'a malformed claims parameter');
      t.same(await counts(), before, 'no state changed');
    });

    t.test('item 10: ui_locales, claims_locales, display and login_hint are accepted', async (t) => {
      const browser = new Browser(issuer);
      const page = await browser.follow(
        await browser.get(authorizationUrl(issuer, rp.clientId, REDIRECT, { ui_locales: 'fr-CA en-GB', claims_locales: 'fr', display: 'popup', login_hint: 'alice@example.com' })),
      );
      t.equal(page.status, 200, 'the login page');
      t.match(page.body, /<html lang="en">/, 'lang follows ui_locales (English is the translation we have)');
      t.match(page.body, /value="alice@example.com"/, 'login_hint prefills the email');
      const before = await counts();
      const bad = await browser.get(authorizationUrl(issuer, rp.clientId, REDIRECT, { display: 'hologram' }));
      t.equal(new URL(bad.location!).searchParams.get('error'), 'invalid_request', 'an unknown display value');
      t.same(await counts(), before);
      const meta = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      t.same(meta.ui_locales_supported, ['en']);
      t.same(meta.display_values_supported, ['page']);
    });

    t.test('issue 17.6: an anonymous /authorize writes nothing; audit events are pruned after AUDIT_RETENTION_DAYS', async (t) => {
      const before = await counts();
      for (let i = 0; i < 20; i++) {
        const r = await fetch(authorizationUrl(issuer, rp.clientId, REDIRECT, { state: 'x'.repeat(2000), nonce: `n${i}` }), { redirect: 'manual' });
        t.equal(r.status, 303);
      }
      t.same(await counts(), before, 'twenty pending interactions, no row');
      // the sealed interaction still works, and is single use
      const browser = new Browser(issuer);
      const step = await authorizeWithLogin(browser, authorizationUrl(issuer, rp.clientId, REDIRECT), 'bob@example.com', PASSWORD);
      t.ok(new URL(step.location!).searchParams.get('code'), 'login through a sealed interaction');

      const now = new Date(env.clock.now());
      const old = new Date(now.getTime() - 91 * 86_400_000);
      for (let i = 0; i < 25; i++) await recordAudit(db, old, { type: 'test.old', details: { i } });
      await recordAudit(db, new Date(now.getTime() - 89 * 86_400_000), { type: 'test.recent' });
      const r = await pruneExpired(db, now, 10, 2);
      t.equal(r?.audit_events, 20, 'bounded batches');
      await pruneExpired(db, now, 10, 2);
      const left = await db.selectFrom('audit_events').select('type').where('type', 'like', 'test.%').execute();
      t.same(left.map((x) => x.type), ['test.recent'], 'only events older than 90 days went');
    });
  });
}

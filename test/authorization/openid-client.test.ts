// A real relying party (openid-client v6) and a real resource server (jose's remote JWKS) against
// the running server: discovery, authorization code + PKCE, login over HTTP, code exchange,
// ID-token validation, userinfo.
import t from 'tap';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { Browser, authorizeWithLogin } from '../helpers/http-login.js';

t.teardown(dropCreatedDatabases);

for (const backend of backends()) {
  t.test(`openid-client login on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => env.close());
    const issuer = env.config.issuer;
    const redirectUri = 'http://127.0.0.1:8123/callback';
    const userId = await createUser(env.rt, 'Ada@Example.com', 'correct horse battery', ['--name', 'Ada Lovelace', '--email-verified']);
    const rp = await createClient(env.rt, ['--name', 'Notes App', '--redirect-uri', redirectUri, '--audiences', 'https://api.example.com', '--scopes', 'openid profile email api:read']);

    const config = await oidc.discovery(new URL(issuer), rp.clientId, rp.clientSecret!, undefined, { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const authUrl = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile email api:read',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });

    const browser = new Browser(issuer);
    const first = await browser.get(authUrl.href);
    t.equal(first.status, 303, 'authorize redirects to the login page with 303');
    t.match(first.location, `${issuer}/interaction/`);
    t.notMatch(first.location, /redirect_uri|state|nonce/, 'the pending request is kept server-side, not in the URL');
    const loginPage = await browser.get(first.location!);
    t.equal(loginPage.status, 200);
    t.match(loginPage.body, /name="username"[^>]*autocomplete="username"/);
    t.match(loginPage.body, /name="password"[^>]*autocomplete="current-password"/);
    t.match(loginPage.body, 'Notes App', 'the client name is shown');
    t.equal(loginPage.res.headers.get('cache-control'), 'no-store');
    t.match(loginPage.res.headers.get('content-security-policy'), /frame-ancestors 'none'/);
    t.match(loginPage.res.headers.get('content-security-policy'), /form-action 'self' http:\/\/127\.0\.0\.1:8123/);
    t.notMatch(loginPage.res.headers.get('content-security-policy'), /upgrade-insecure-requests/);
    t.equal(loginPage.res.headers.get('referrer-policy'), 'same-origin');

    // consent (not first-party), then back to the client
    const done = await authorizeWithLogin(browser, authUrl.href, 'ada@example.com', 'correct horse battery');
    const loginForm = /action="([^"]+)"/.exec(loginPage.body)![1]!;
    t.ok(loginForm.startsWith(`${issuer}/interaction/`), 'the form posts back to the issuer');
    t.equal(done.status, 303);
    t.ok(done.location!.startsWith(redirectUri), 'redirected to the client');
    const cb = new URL(done.location!);
    t.equal(cb.searchParams.get('state'), state);
    t.equal(cb.searchParams.get('iss'), issuer, 'RFC 9207 iss');
    const sessionCookie = browser.jar.get('lk_session');
    t.ok(sessionCookie, 'a login session cookie');

    const tokens = await oidc.authorizationCodeGrant(config, cb, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const claims = tokens.claims()!;
    t.equal(claims.sub, userId);
    t.equal(claims.iss, issuer);
    t.equal(claims.aud, rp.clientId);
    t.equal(claims.nonce, nonce);
    t.equal(claims.azp, rp.clientId);
    t.equal(claims.name, 'Ada Lovelace');
    t.equal(claims.email, 'Ada@Example.com');
    t.equal(claims.email_verified, true);
    t.ok(claims.sid);
    t.ok(claims.auth_time);
    t.ok(claims.at_hash);
    t.equal(decodeProtectedHeader(tokens.id_token!).alg, 'RS256', 'ID tokens default to RS256');
    t.equal(tokens.token_type.toLowerCase(), 'bearer');

    const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    t.same(info, { sub: userId, name: 'Ada Lovelace', email: 'Ada@Example.com', email_verified: true });

    // the resource server verifies the access token offline with the JWKS
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
      issuer,
      audience: 'https://api.example.com',
      algorithms: ['ES256'],
      typ: 'at+jwt',
    });
    t.equal(protectedHeader.typ, 'at+jwt');
    t.equal(protectedHeader.alg, 'ES256');
    t.equal(payload.sub, userId);
    t.equal(payload.client_id, rp.clientId);
    t.equal(payload.scope, 'openid profile email api:read');
    t.same(payload.aud, ['https://api.example.com', `${issuer}/userinfo`]);
    t.ok(payload.jti);
    t.equal(payload.exp! - payload.iat!, 900);
    t.equal(payload.auth_time, claims.auth_time);

    // SSO: a second request in the same browser skips the login and the (remembered) consent
    const again = await browser.get(
      oidc.buildAuthorizationUrl(config, { redirect_uri: redirectUri, scope: 'openid profile', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 's2' }).href,
    );
    t.equal(again.status, 303);
    t.ok(again.location!.startsWith(redirectUri), 'SSO answers with a code at once');
    t.ok(new URL(again.location!).searchParams.get('code'));

    // prompt=login forces the login page even with a session
    const forced = await browser.get(
      oidc.buildAuthorizationUrl(config, { redirect_uri: redirectUri, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', prompt: 'login' }).href,
    );
    t.match(forced.location, `${issuer}/interaction/`);

    // client_credentials through openid-client, verified by the resource server
    const m2m = await createClient(env.rt, ['--name', 'Batch', '--grant-types', 'client_credentials', '--scopes', 'api:read api:write', '--audiences', 'https://api.example.com']);
    const m2mConfig = await oidc.discovery(new URL(issuer), m2m.clientId, m2m.clientSecret!, oidc.ClientSecretBasic(m2m.clientSecret!), { execute: [oidc.allowInsecureRequests] });
    const cc = await oidc.clientCredentialsGrant(m2mConfig, { scope: 'api:read' });
    const verified = await jwtVerify(cc.access_token, jwks, { issuer, audience: 'https://api.example.com', algorithms: ['ES256'], typ: 'at+jwt' });
    t.equal(verified.payload.sub, m2m.clientId);
    t.equal(verified.payload.scope, 'api:read');
    t.equal(cc.refresh_token, undefined);
    // a client_credentials token is not accepted at userinfo
    const ui = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${cc.access_token}` } });
    t.equal(ui.status, 401);
    t.match(ui.headers.get('www-authenticate'), /error="invalid_token"/);
  });
}

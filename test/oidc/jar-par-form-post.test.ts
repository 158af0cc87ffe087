// Issue 11 items 2, 5, 6 and 7 with openid-client v6 as the relying party: response_mode=form_post,
// signed request objects (RFC 9101) and pushed authorization requests (RFC 9126), and the error
// codes when a request or request_uri cannot be used. Every error case checks that no row changed.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import * as oidc from 'openid-client';
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, tempDir } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { Browser, authorizeWithLogin, parseForm } from '../helpers/http-login.js';
import { authorizationUrl, postForm } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9/cb';
const PASSWORD = 'correct horse battery';
const TABLES = ['interactions', 'login_sessions', 'consents', 'refresh_families', 'audit_events'] as const;

for (const backend of backends()) {
  t.test(`form_post, JAR and PAR on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const db = env.rt.db;
    await createUser(env.rt, 'alice@example.com', PASSWORD);
    const keys = await generateKeyPair('ES256', { extractable: true });
    const stranger = await generateKeyPair('ES256', { extractable: true });
    const jwksFile = path.join(tempDir(), 'jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'rp-1', alg: 'ES256', use: 'sig' }] }));
    const rp = await createClient(env.rt, ['--name', 'RP', '--redirect-uri', REDIRECT, '--first-party', '--jwks', jwksFile, '--scopes', 'openid email profile']);
    const plain = await createClient(env.rt, ['--name', 'No keys', '--redirect-uri', REDIRECT, '--first-party']);
    const parOnly = await createClient(env.rt, ['--name', 'PAR only', '--redirect-uri', REDIRECT, '--first-party', '--require-par']);
    const config = await oidc.discovery(new URL(issuer), rp.clientId, rp.clientSecret!, undefined, { execute: [oidc.allowInsecureRequests] });

    async function counts(): Promise<Record<string, number>> {
      const out: Record<string, number> = {};
      for (const table of TABLES) out[table] = Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
      return out;
    }
    const errorPageCode = (body: string) => /Error: ([a-z_]+)\./.exec(body)?.[1];

    t.test('discovery lists what is implemented', async (t) => {
      const m = config.serverMetadata();
      t.same(m.response_modes_supported, ['query', 'form_post']);
      t.equal(m.pushed_authorization_request_endpoint, `${issuer}/par`);
      t.equal(m.require_pushed_authorization_requests, false);
      t.equal(m.request_parameter_supported, true);
      t.equal(m.request_uri_parameter_supported, false, 'request objects are never fetched by reference');
      t.ok((m.request_object_signing_alg_values_supported as string[]).includes('ES256'));
      t.notOk((m.request_object_signing_alg_values_supported as string[]).includes('none'));
    });

    t.test('item 5: response_mode=form_post', async (t) => {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const url = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', state, response_mode: 'form_post', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const step = await authorizeWithLogin(new Browser(issuer), url.href, 'alice@example.com', PASSWORD);
      t.equal(step.status, 200, 'a page, not a redirect');
      t.equal(step.res.headers.get('cache-control'), 'no-store');
      const csp = step.res.headers.get('content-security-policy')!;
      const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
      t.ok(nonce, 'a CSP nonce for the script');
      t.match(csp, /form-action http:\/\/127\.0\.0\.1:9/);
      t.match(step.body, `<script nonce="${nonce}">`);
      const { action, fields } = parseForm(step.body);
      t.equal(action, REDIRECT);
      t.equal(fields.state, state);
      t.equal(fields.iss, issuer);
      const callback = new Request(REDIRECT, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
      const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
      t.ok(tokens.id_token, 'openid-client redeems the posted code');

      // errors go back the same way; an unknown mode is an error page, never a redirect
      const before = await counts();
      const b = new Browser(issuer);
      const err = await b.get(authorizationUrl(issuer, rp.clientId, REDIRECT, { response_mode: 'form_post', scope: 'openid nope' }));
      t.equal(err.status, 200);
      t.equal(parseForm(err.body).fields.error, 'invalid_scope', 'the error is posted');
      const unknown = await b.get(authorizationUrl(issuer, rp.clientId, REDIRECT, { response_mode: 'fragment' }));
      t.equal(unknown.status, 400, 'unknown mode: 400');
      t.equal(unknown.location, undefined, 'never redirected');
      t.same(await counts(), before, 'no state changed');
    });

    t.test('item 6: request objects signed with the client keys (RFC 9101)', async (t) => {
      // openid-client signs with the real clock (nbf, iat): bring the server's test clock up to it
      env.clock.set(Math.max(Date.now(), env.clock.now()));
      const verifier = oidc.randomPKCECodeVerifier();
      const nonce = oidc.randomNonce();
      const url = await oidc.buildAuthorizationUrlWithJAR(
        config,
        { redirect_uri: REDIRECT, scope: 'openid email', nonce, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' },
        { key: keys.privateKey, kid: 'rp-1' },
      );
      t.ok(url.searchParams.get('request'), 'openid-client sends a request object');
      // parameters outside the object are ignored (RFC 9101 §6.3)
      url.searchParams.set('scope', 'openid profile');
      const step = await authorizeWithLogin(new Browser(issuer), url.href, 'alice@example.com', PASSWORD);
      const tokens = await oidc.authorizationCodeGrant(config, new URL(step.location!), { pkceCodeVerifier: verifier, expectedNonce: nonce });
      t.equal(tokens.scope, 'openid email', 'the scope of the object, not of the query');

      const now = Math.floor(env.clock.now() / 1000);
      const base = { iss: rp.clientId, aud: issuer, client_id: rp.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', iat: now, exp: now + 300 };
      const sign = (claims: Record<string, unknown>, key = keys.privateKey, header: Record<string, unknown> = { alg: 'ES256', kid: 'rp-1' }) =>
        new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key);
      const bad: Record<string, string> = {
        'alg none': new UnsecuredJWT(base).encode(),
        'a stranger key': await sign(base, stranger.privateKey),
        'an embedded jwk': await sign(base, stranger.privateKey, { alg: 'ES256', jwk: await exportJWK(stranger.publicKey) }),
        'another audience': await sign({ ...base, aud: 'https://other.example' }),
        'another issuer': await sign({ ...base, iss: plain.clientId }),
        'an hour of lifetime': await sign({ ...base, exp: now + 3600 }),
        expired: await sign({ ...base, iat: now - 900, exp: now - 600 }),
        'another client_id inside': await sign({ ...base, client_id: plain.clientId }),
      };
      const before = await counts();
      const b = new Browser(issuer);
      for (const [what, jwt] of Object.entries(bad)) {
        const r = await b.get(`${issuer}/authorize?client_id=${rp.clientId}&request=${jwt}`);
        t.equal(r.status, 400, `${what}: 400`);
        t.equal(r.location, undefined, `${what}: never redirected`);
        t.equal(errorPageCode(r.body), 'invalid_request_object', `${what}: invalid_request_object`);
      }
      const noKeys = await b.get(`${issuer}/authorize?client_id=${plain.clientId}&request=${await sign({ ...base, iss: plain.clientId, client_id: plain.clientId })}`);
      t.equal(errorPageCode(noKeys.body), 'invalid_request_object', 'a client without registered keys');
      t.same(await counts(), before, 'no state changed');
    });

    t.test('item 7: pushed authorization requests (RFC 9126)', async (t) => {
      const verifier = oidc.randomPKCECodeVerifier();
      const url = await oidc.buildAuthorizationUrlWithPAR(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const requestUri = url.searchParams.get('request_uri')!;
      t.match(requestUri, /^urn:ietf:params:oauth:request_uri:[A-Za-z0-9_-]{40,}$/);
      const id = requestUri.split(':').pop()!;
      const stored = await db.selectFrom('interactions').select('id_digest').execute();
      t.notOk(stored.some((r) => r.id_digest.includes(id)), 'only a digest is stored');
      const browser = new Browser(issuer);
      const step = await authorizeWithLogin(browser, url.href, 'alice@example.com', PASSWORD);
      const tokens = await oidc.authorizationCodeGrant(config, new URL(step.location!), { pkceCodeVerifier: verifier });
      t.ok(tokens.access_token, 'openid-client completes the flow');

      const before = await counts();
      const replay = await browser.get(url.href);
      t.equal(errorPageCode(replay.body), 'invalid_request_uri', 'single use');
      t.same(await counts(), before, 'a replay changes nothing');

      // a JAR pushed through PAR, expiry after 60 s, another client's request_uri
      const pushed = await postForm(`${issuer}/par`, { response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }, { clientId: rp.clientId, secret: rp.clientSecret });
      t.equal(pushed.status, 201);
      t.equal(pushed.body.expires_in, 60);
      t.equal(pushed.headers.get('cache-control'), 'no-store');
      const foreign = await browser.get(`${issuer}/authorize?client_id=${plain.clientId}&request_uri=${encodeURIComponent(pushed.body.request_uri as string)}`);
      t.equal(errorPageCode(foreign.body), 'invalid_request_uri', "another client's request_uri");
      const late = await postForm(`${issuer}/par`, { response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }, { clientId: rp.clientId, secret: rp.clientSecret });
      env.clock.advance(61);
      const expired = await browser.get(`${issuer}/authorize?client_id=${rp.clientId}&request_uri=${encodeURIComponent(late.body.request_uri as string)}`);
      t.equal(errorPageCode(expired.body), 'invalid_request_uri', 'expired after 60 s');

      const before2 = await counts();
      const unauthenticated = await postForm(`${issuer}/par`, { client_id: rp.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid' });
      t.equal(unauthenticated.status, 401, 'PAR needs client authentication');
      const invalid = await postForm(`${issuer}/par`, { response_type: 'code', redirect_uri: 'https://evil.example/cb', scope: 'openid' }, { clientId: rp.clientId, secret: rp.clientSecret });
      t.equal(invalid.status, 400);
      t.equal(invalid.body.error, 'invalid_request', 'validated like /authorize, answered as JSON');
      const nested = await postForm(`${issuer}/par`, { request_uri: requestUri }, { clientId: rp.clientId, secret: rp.clientSecret });
      t.equal(nested.status, 400, 'request_uri cannot be pushed');
      // a --require-par client may use nothing else
      const direct = await browser.get(authorizationUrl(issuer, parOnly.clientId, REDIRECT));
      t.equal(direct.status, 400);
      t.equal(direct.location, undefined);
      t.match(direct.body, /pushed authorization requests/);
      t.same(await counts(), { ...before2, audit_events: before2.audit_events + 1 }, 'nothing but the audit of the failed client authentication');
    });

    t.test('item 2: request_uri we did not issue and request object errors use the RFC codes', async (t) => {
      const before = await counts();
      const b = new Browser(issuer);
      const fetched = await b.get(`${issuer}/authorize?client_id=${rp.clientId}&request_uri=${encodeURIComponent('https://rp.example/request.jwt')}`);
      t.equal(errorPageCode(fetched.body), 'request_uri_not_supported');
      const both = await b.get(`${issuer}/authorize?client_id=${rp.clientId}&request=a.b.c&request_uri=urn:ietf:params:oauth:request_uri:x`);
      t.equal(errorPageCode(both.body), 'invalid_request');
      const unknown = await b.get(`${issuer}/authorize?client_id=${rp.clientId}&request_uri=urn:ietf:params:oauth:request_uri:${'A'.repeat(43)}`);
      t.equal(errorPageCode(unknown.body), 'invalid_request_uri');
      t.same(await counts(), before, 'no state changed');
    });
  });
}

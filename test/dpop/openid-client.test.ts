// Issue 15, end to end with openid-client v6's DPoP support as the client (RFC 9449): the code
// flow (with dpop_jkt and with PAR), refresh with a public client's bound refresh token, userinfo
// with the DPoP scheme, client_credentials, introspection's cnf, server nonces — on both databases.
import t from 'tap';
import type { Test } from 'tap';
import * as oidc from 'openid-client';
import { calculateJwkThumbprint, decodeJwt, exportJWK } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, RunningClock } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { Browser, authorizeWithLogin } from '../helpers/http-login.js';
import { basic } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9/cb';
const PASSWORD = 'correct horse battery';
const insecure = { execute: [oidc.allowInsecureRequests] };

/** The OAuth error code openid-client rejected with. */
async function rejectsWith(t: Test, p: Promise<unknown>, code: string, msg = code): Promise<void> {
  try {
    await p;
    t.fail(`${msg}: not rejected`);
  } catch (err) {
    t.equal((err as { error?: string }).error, code, msg);
  }
}

async function thumbprint(keys: { publicKey: Parameters<typeof exportJWK>[0] }): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(keys.publicKey), 'sha256');
}

for (const backend of backends()) {
  t.test(`DPoP with openid-client on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true, clock: new RunningClock(Date.now()) });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    await createUser(env.rt, 'alice@example.com', PASSWORD);
    const spa = await createClient(env.rt, ['--name', 'SPA', '--public', '--redirect-uri', REDIRECT, '--first-party', '--grant-types', 'authorization_code,refresh_token', '--scopes', 'openid email offline_access']);
    const web = await createClient(env.rt, ['--name', 'Web', '--redirect-uri', REDIRECT, '--first-party', '--grant-types', 'authorization_code,refresh_token', '--scopes', 'openid email offline_access']);
    const api = await createClient(env.rt, ['--name', 'API', '--grant-types', 'client_credentials', '--scopes', 'orders:read', '--audiences', 'https://api.example.com', '--resource-server', 'https://api.example.com', '--dpop-bound']);
    const spaConfig = await oidc.discovery(new URL(issuer), spa.clientId, undefined, oidc.None(), insecure);
    const webConfig = await oidc.discovery(new URL(issuer), web.clientId, web.clientSecret!, undefined, insecure);
    const apiConfig = await oidc.discovery(new URL(issuer), api.clientId, api.clientSecret!, undefined, insecure);

    async function login(config: oidc.Configuration, params: Record<string, string>, viaPar?: oidc.DPoPHandle) {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const all = { redirect_uri: REDIRECT, scope: 'openid email offline_access', state, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...params };
      const url = viaPar ? await oidc.buildAuthorizationUrlWithPAR(config, all, { DPoP: viaPar }) : oidc.buildAuthorizationUrl(config, all);
      const step = await authorizeWithLogin(new Browser(issuer), url.href, 'alice@example.com', PASSWORD);
      if (!step.location?.startsWith(REDIRECT)) throw new Error(`no code: ${step.status} ${step.body.slice(0, 200)}`);
      return { callback: new URL(step.location), checks: { pkceCodeVerifier: verifier, expectedState: state } };
    }

    t.test('discovery names the DPoP algorithms', async (t) => {
      t.same(spaConfig.serverMetadata().dpop_signing_alg_values_supported, ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256']);
    });

    t.test('code flow with dpop_jkt, refresh bound to the key, userinfo with the DPoP scheme', async (t) => {
      const keys = await oidc.randomDPoPKeyPair('ES256');
      const DPoP = oidc.getDPoPHandle(spaConfig, keys);
      const jkt = await thumbprint(keys);
      t.equal(await DPoP.calculateThumbprint(), jkt);
      const { callback, checks } = await login(spaConfig, { dpop_jkt: jkt });
      const tokens = await oidc.authorizationCodeGrant(spaConfig, callback, checks, undefined, { DPoP });
      t.equal(tokens.token_type.toLowerCase(), 'dpop');
      t.equal((decodeJwt(tokens.access_token).cnf as { jkt: string }).jkt, jkt, 'the access token is bound to the key');
      t.ok(tokens.refresh_token);
      const family = await env.rt.db.selectFrom('refresh_families').select(['dpop_jkt']).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
      t.equal(family.dpop_jkt, jkt, "a public client's family is bound to the key");

      const claims = tokens.claims()!;
      const info = await oidc.fetchUserInfo(spaConfig, tokens.access_token, claims.sub, { DPoP });
      t.equal(info.email, 'alice@example.com', 'userinfo accepts the DPoP scheme with a proof');

      // the bound token sent as a bearer token is refused
      const asBearer = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      t.equal(asBearer.status, 401);
      t.match(asBearer.headers.get('www-authenticate'), /^DPoP error="invalid_token"/);

      const refreshed = await oidc.refreshTokenGrant(spaConfig, tokens.refresh_token!, undefined, { DPoP });
      t.equal(refreshed.token_type.toLowerCase(), 'dpop');
      t.equal((decodeJwt(refreshed.access_token).cnf as { jkt: string }).jkt, jkt);

      // the rotated refresh token with another key: refused, and it still works with the right one
      const other = oidc.getDPoPHandle(spaConfig, await oidc.randomDPoPKeyPair('ES256'));
      await rejectsWith(t, oidc.refreshTokenGrant(spaConfig, refreshed.refresh_token!, undefined, { DPoP: other }), 'invalid_dpop_proof');
      await rejectsWith(t, oidc.refreshTokenGrant(spaConfig, refreshed.refresh_token!), 'invalid_dpop_proof', 'and without a proof');
      const again = await oidc.refreshTokenGrant(spaConfig, refreshed.refresh_token!, undefined, { DPoP });
      t.ok(again.access_token, 'the refused attempts changed nothing: the token still rotates with its key');
      const fam = await env.rt.db.selectFrom('refresh_families').select(['revoked_at']).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
      t.equal(fam.revoked_at, null, 'no reuse detection fired');
    });

    t.test('a consumed bound refresh token presented with another key: refused before reuse detection', async (t) => {
      const keys = await oidc.randomDPoPKeyPair('ES256');
      const DPoP = oidc.getDPoPHandle(spaConfig, keys);
      const { callback, checks } = await login(spaConfig, {});
      const tokens = await oidc.authorizationCodeGrant(spaConfig, callback, checks, undefined, { DPoP });
      const family = await env.rt.db.selectFrom('refresh_families').select(['id', 'dpop_jkt']).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
      t.equal(family.dpop_jkt, await thumbprint(keys), 'a proof alone (no dpop_jkt) binds the family of a public client');
      const next = await oidc.refreshTokenGrant(spaConfig, tokens.refresh_token!, undefined, { DPoP });
      // the first token is now stale: a thief holding it but not the key cannot end the session with it
      const thief = oidc.getDPoPHandle(spaConfig, await oidc.randomDPoPKeyPair('ES256'));
      await rejectsWith(t, oidc.refreshTokenGrant(spaConfig, tokens.refresh_token!, undefined, { DPoP: thief }), 'invalid_dpop_proof');
      await rejectsWith(t, oidc.refreshTokenGrant(spaConfig, tokens.refresh_token!), 'invalid_dpop_proof', 'nor without a proof');
      const after = await env.rt.db.selectFrom('refresh_families').select(['revoked_at']).where('id', '=', family.id).executeTakeFirstOrThrow();
      t.equal(after.revoked_at, null, 'the family lives');
      t.ok((await oidc.refreshTokenGrant(spaConfig, next.refresh_token!, undefined, { DPoP })).access_token, 'its current token still rotates');
      // the holder of the key presenting the stale token is a reuse, as without DPoP
      await rejectsWith(t, oidc.refreshTokenGrant(spaConfig, tokens.refresh_token!, undefined, { DPoP }), 'invalid_grant');
      const revoked = await env.rt.db.selectFrom('refresh_families').select(['revoked_at']).where('id', '=', family.id).executeTakeFirstOrThrow();
      t.ok(revoked.revoked_at, 'reuse by the key holder revokes the family');
    });

    t.test('a code bound by dpop_jkt is redeemed only with that key', async (t) => {
      const keys = await oidc.randomDPoPKeyPair('ES256');
      const { callback, checks } = await login(spaConfig, { dpop_jkt: await thumbprint(keys) });
      const other = oidc.getDPoPHandle(spaConfig, await oidc.randomDPoPKeyPair('ES256'));
      await rejectsWith(t, oidc.authorizationCodeGrant(spaConfig, callback, checks, undefined, { DPoP: other }), 'invalid_dpop_proof');
      await rejectsWith(t, oidc.authorizationCodeGrant(spaConfig, callback, checks), 'invalid_dpop_proof');
      const tokens = await oidc.authorizationCodeGrant(spaConfig, callback, checks, undefined, { DPoP: oidc.getDPoPHandle(spaConfig, keys) });
      t.equal(tokens.token_type.toLowerCase(), 'dpop', 'the refusals did not use the code');
    });

    t.test('PAR with a DPoP proof binds the code (RFC 9449 §10.1)', async (t) => {
      const keys = await oidc.randomDPoPKeyPair('ES256');
      const DPoP = oidc.getDPoPHandle(webConfig, keys);
      const { callback, checks } = await login(webConfig, {}, DPoP);
      await rejectsWith(t, oidc.authorizationCodeGrant(webConfig, callback, checks), 'invalid_dpop_proof');
      const tokens = await oidc.authorizationCodeGrant(webConfig, callback, checks, undefined, { DPoP });
      t.equal((decodeJwt(tokens.access_token).cnf as { jkt: string }).jkt, await thumbprint(keys));
      const family = await env.rt.db.selectFrom('refresh_families').select(['dpop_jkt']).orderBy('created_at', 'desc').executeTakeFirstOrThrow();
      t.equal(family.dpop_jkt, null, "a confidential client's refresh token is not bound (its authentication constrains it)");
      // a confidential client refreshes without a proof: a bearer token then
      const plain = await oidc.refreshTokenGrant(webConfig, tokens.refresh_token!);
      t.equal(plain.token_type.toLowerCase(), 'bearer');
      t.equal(decodeJwt(plain.access_token).cnf, undefined);
    });

    t.test('without DPoP nothing changes: bearer tokens', async (t) => {
      const { callback, checks } = await login(webConfig, {});
      const tokens = await oidc.authorizationCodeGrant(webConfig, callback, checks);
      t.equal(tokens.token_type.toLowerCase(), 'bearer');
      t.equal(decodeJwt(tokens.access_token).cnf, undefined);
      const info = await oidc.fetchUserInfo(webConfig, tokens.access_token, tokens.claims()!.sub);
      t.equal(info.sub, tokens.claims()!.sub);
      // an unbound token with the DPoP scheme claims a binding it does not have
      const DPoP = oidc.getDPoPHandle(webConfig, await oidc.randomDPoPKeyPair('ES256'));
      await t.rejects(oidc.fetchUserInfo(webConfig, tokens.access_token, tokens.claims()!.sub, { DPoP }));
    });

    t.test('client_credentials with --dpop-bound; introspection returns cnf', async (t) => {
      await rejectsWith(t, oidc.clientCredentialsGrant(apiConfig, { scope: 'orders:read' }), 'invalid_dpop_proof', 'a --dpop-bound client must send a proof');
      for (const alg of ['ES256', 'EdDSA', 'RS256', 'PS256']) {
        const keys = await oidc.randomDPoPKeyPair(alg);
        const DPoP = oidc.getDPoPHandle(apiConfig, keys);
        const tokens = await oidc.clientCredentialsGrant(apiConfig, { scope: 'orders:read' }, { DPoP });
        t.equal(tokens.token_type.toLowerCase(), 'dpop', alg);
        const jkt = await thumbprint(keys);
        t.equal((decodeJwt(tokens.access_token).cnf as { jkt: string }).jkt, jkt, `${alg}: cnf.jkt`);
        const res = await fetch(`${issuer}/introspect`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(api.clientId, api.clientSecret!) },
          body: new URLSearchParams({ token: tokens.access_token }),
        });
        const body = (await res.json()) as Record<string, unknown>;
        t.equal(body.active, true);
        t.equal(body.token_type, 'DPoP');
        t.same(body.cnf, { jkt });
      }
    });

    t.test('server nonces: a proof without one gets use_dpop_nonce and DPoP-Nonce; openid-client retries with it', async (t) => {
      const keys = await oidc.randomDPoPKeyPair('ES256');
      const { SignJWT } = await import('jose');
      const jwk = await exportJWK(keys.publicKey);
      const proof = await new SignJWT({ htm: 'POST', htu: `${issuer}/token`, jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000) })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
        .sign(keys.privateKey);
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(api.clientId, api.clientSecret!), dpop: proof },
        body: new URLSearchParams({ grant_type: 'client_credentials' }),
      });
      t.equal(res.status, 400);
      t.equal(((await res.json()) as { error: string }).error, 'use_dpop_nonce');
      const nonce = res.headers.get('dpop-nonce');
      t.match(nonce, /^[A-Za-z0-9_-]{27}$/);
      // a fresh handle knows no nonce: its first attempt is refused, the retry carries the nonce
      const tokens = await oidc.clientCredentialsGrant(apiConfig, {}, { DPoP: oidc.getDPoPHandle(apiConfig, keys) });
      t.equal(tokens.token_type.toLowerCase(), 'dpop');
    });
  });
}

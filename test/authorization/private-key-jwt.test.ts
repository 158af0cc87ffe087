// private_key_jwt client authentication (RFC 7523, OIDC Core §9) against keys registered inline
// with `latchkey clients create --auth-method private_key_jwt --jwks FILE`, and ID tokens signed
// with the client's registered --id-token-alg, checked by openid-client as the relying party.
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as oidc from 'openid-client';
import { SignJWT, UnsecuredJWT, decodeProtectedHeader, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, tempDir } from '../helpers/runtime.js';
import { cli, createClient, createUser } from '../helpers/fixtures.js';
import { Browser, authorizeWithLogin } from '../helpers/http-login.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9/cb';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

for (const backend of backends()) {
  t.test(`private_key_jwt on ${backend.name}`, async (t) => {
    // this file makes many failed authentications on purpose: keep the failure limits out of the way
    const env = await createTestEnv(await backend.create(), { listen: true, env: { CLIENT_AUTH_FAILURES_PER_CLIENT: '1000', CLIENT_AUTH_FAILURES_PER_IP: '1000' } });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const tokenEndpoint = `${issuer}/token`;

    const registered = await generateKeyPair('ES256', { extractable: true });
    const stranger = await generateKeyPair('ES256', { extractable: true });
    const kid = 'client-key-1';
    const jwksFile = path.join(tempDir(), 'client-jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(registered.publicKey)), kid, alg: 'ES256', use: 'sig' }] }));

    const created = await cli(env.rt, [
      'clients',
      'create',
      '--name',
      'Key Client',
      '--auth-method',
      'private_key_jwt',
      '--jwks',
      jwksFile,
      '--id-token-alg',
      'ES256',
      '--grant-types',
      'authorization_code,client_credentials',
      '--redirect-uri',
      REDIRECT,
      '--scopes',
      'openid profile email api:read',
      '--audiences',
      'https://api.example.com',
    ]);
    const clientId = created.client_id as string;
    t.equal(created.client_secret, undefined, 'a private_key_jwt client gets no secret');

    const now = () => Math.floor(env.clock.now() / 1000);
    interface AssertionOptions {
      key?: CryptoKey;
      alg?: string;
      kid?: string | null;
      iss?: string;
      sub?: string;
      aud?: string | string[];
      exp?: number | null;
      jti?: string | null;
      nbf?: number;
    }
    async function assertion(o: AssertionOptions = {}): Promise<string> {
      const payload: JWTPayload = { iss: o.iss ?? clientId, sub: o.sub ?? clientId, aud: o.aud ?? issuer, iat: now() };
      if (o.exp !== null) payload.exp = o.exp ?? now() + 60;
      if (o.jti !== null) payload.jti = o.jti ?? crypto.randomUUID();
      if (o.nbf !== undefined) payload.nbf = o.nbf;
      const header: { alg: string; kid?: string } = { alg: o.alg ?? 'ES256' };
      if (o.kid !== null) header.kid = o.kid ?? kid;
      return new SignJWT(payload).setProtectedHeader(header).sign(o.key ?? registered.privateKey);
    }
    async function token(form: Record<string, string | undefined>, headers: Record<string, string> = {}) {
      const body = new URLSearchParams();
      for (const [k, v] of Object.entries(form)) if (v !== undefined) body.append(k, v);
      const res = await fetch(tokenEndpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
      return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
    }
    const withAssertion = (jwt: string, extra: Record<string, string | undefined> = {}) =>
      token({ grant_type: 'client_credentials', scope: 'api:read', client_assertion_type: ASSERTION_TYPE, client_assertion: jwt, ...extra });
    async function jtiRows(): Promise<number> {
      const r = await env.rt.db.selectFrom('client_assertion_jtis').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      return Number(r.n);
    }
    const refused = async (t: Tap, what: string, jwt: string | Promise<string>, extra: Record<string, string | undefined> = {}) => {
      const r = await withAssertion(await jwt, extra);
      t.equal(r.status, 401, `${what}: 401`);
      t.equal(r.json.error, 'invalid_client', `${what}: invalid_client`);
      t.ok(r.headers.get('www-authenticate'), `${what}: WWW-Authenticate`);
      t.equal(r.json.access_token, undefined);
    };
    type Tap = typeof t;

    t.test('a valid assertion authenticates the client', async (t) => {
      for (const [what, aud] of [
        ['aud = issuer', issuer],
        ['aud = [issuer]', [issuer]],
      ] as const) {
        const r = await withAssertion(await assertion({ aud: aud as string | string[] }));
        t.equal(r.status, 200, what);
        t.equal(r.json.token_type, 'Bearer');
        t.equal(r.json.scope, 'api:read');
        t.equal(r.headers.get('cache-control'), 'no-store');
      }
      t.equal((await withAssertion(await assertion(), { client_id: clientId })).status, 200, 'with a matching client_id');
      t.equal((await withAssertion(await assertion({ exp: now() + 300 }))).status, 200, 'exp five minutes ahead');
      t.equal((await withAssertion(await assertion({ kid: null }))).status, 200, 'without a kid (the one registered key)');
    });

    t.test('replayed jti', async (t) => {
      const jti = crypto.randomUUID();
      const jwt = await assertion({ jti });
      t.equal((await withAssertion(jwt)).status, 200, 'first use');
      const rows = await jtiRows();
      await refused(t, 'the same assertion again', jwt);
      await refused(t, 'another assertion with the same jti', assertion({ jti }));
      t.equal(await jtiRows(), rows, 'nothing new stored');
    });

    t.test('a refused assertion does not use up its jti', async (t) => {
      const jti = crypto.randomUUID();
      const rows = await jtiRows();
      await refused(t, 'wrong aud', assertion({ jti, aud: 'https://other.example/token' }));
      t.equal(await jtiRows(), rows);
      t.equal((await withAssertion(await assertion({ jti }))).status, 200, 'the jti is still good for a valid assertion');
    });

    t.test('claims that are wrong', async (t) => {
      await refused(t, 'aud of another server', assertion({ aud: 'https://other.example/token' }));
      await refused(t, 'aud of another endpoint of ours', assertion({ aud: `${issuer}/userinfo` }));
      // draft-ietf-oauth-rfc7523bis: the issuer only, never an endpoint URL or a list with others
      await refused(t, 'aud = token endpoint', assertion({ aud: tokenEndpoint }));
      await refused(t, 'aud = [issuer, another]', assertion({ aud: [issuer, 'https://other.example'] }));
      await refused(t, 'exp too far ahead', assertion({ exp: now() + 3600 }));
      await refused(t, 'exp just past the allowed lifetime and leeway', assertion({ exp: now() + 300 + env.config.clockLeewaySeconds + 5 }));
      await refused(t, 'expired', assertion({ exp: now() - env.config.clockLeewaySeconds - 5 }));
      await refused(t, 'no exp', assertion({ exp: null }));
      await refused(t, 'no jti', assertion({ jti: null }));
      await refused(t, 'not yet valid', assertion({ nbf: now() + 120 }));
      await refused(t, 'iss is not the client', assertion({ iss: 'someone-else' }));
      await refused(t, 'sub is another client', assertion({ sub: 'someone-else' }), { client_id: clientId });
    });

    t.test('keys and algorithms that are wrong', async (t) => {
      await refused(t, 'signed by another key, same kid', assertion({ key: stranger.privateKey }));
      await refused(t, 'signed by another key, no kid', assertion({ key: stranger.privateKey, kid: null }));
      const unsigned = new UnsecuredJWT({ iss: clientId, sub: clientId, aud: issuer, jti: crypto.randomUUID(), exp: now() + 60 }).encode();
      await refused(t, 'alg none', unsigned);
      // HS256 keyed with the client's public key (the algorithm-confusion attack) and with a guess
      const publicJwkText = fs.readFileSync(jwksFile, 'utf8');
      const hs = (secret: Uint8Array) =>
        new SignJWT({ iss: clientId, sub: clientId, aud: issuer, jti: crypto.randomUUID(), exp: now() + 60 }).setProtectedHeader({ alg: 'HS256', kid }).sign(secret);
      await refused(t, 'HS256 with the public key as secret', hs(new TextEncoder().encode(publicJwkText)));
      await refused(t, 'HS256 with a random secret', hs(crypto.randomBytes(32)));
      // a header that names its own key is not a key source
      const embedded = await new SignJWT({ iss: clientId, sub: clientId, aud: issuer, jti: crypto.randomUUID(), exp: now() + 60 })
        .setProtectedHeader({ alg: 'ES256', jwk: await exportJWK(stranger.publicKey) })
        .sign(stranger.privateKey);
      await refused(t, 'a jwk in the header', embedded);
      await refused(t, 'garbage', Promise.resolve('not.a.jwt'));
    });

    t.test('method errors', async (t) => {
      let r = await withAssertion(await assertion(), { client_assertion_type: 'urn:example:other' });
      t.equal(r.status, 400);
      t.equal(r.json.error, 'invalid_request', 'unknown client_assertion_type');
      r = await withAssertion(await assertion(), { client_secret: 'x', client_id: clientId });
      t.equal(r.status, 400);
      t.equal(r.json.error, 'invalid_request', 'assertion and secret together');
      r = await token(
        { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion() },
        { authorization: `Basic ${Buffer.from(`${clientId}:x`).toString('base64')}` },
      );
      t.equal(r.json.error, 'invalid_request', 'assertion and Basic together');
      r = await withAssertion(await assertion(), { client_id: 'someone-else' });
      t.equal(r.status, 401);
      t.equal(r.json.error, 'invalid_client', 'client_id names another client than the assertion');
      // this client cannot use a secret; a secret client cannot use an assertion
      r = await token({ grant_type: 'client_credentials' }, { authorization: `Basic ${Buffer.from(`${clientId}:guess`).toString('base64')}` });
      t.equal(r.status, 401);
      t.equal(r.json.error, 'invalid_client', 'a secret for a private_key_jwt client');
      const secretClient = await createClient(env.rt, ['--name', 'Secret Client', '--grant-types', 'client_credentials', '--scopes', 'api:read', '--audiences', 'https://api.example.com']);
      const forSecret = await new SignJWT({ iss: secretClient.clientId, sub: secretClient.clientId, aud: issuer, jti: crypto.randomUUID(), exp: now() + 60 })
        .setProtectedHeader({ alg: 'ES256', kid })
        .sign(registered.privateKey);
      r = await withAssertion(forSecret);
      t.equal(r.status, 401);
      t.equal(r.json.error, 'invalid_client', 'an assertion for a client registered with a secret');
    });

    t.test('openid-client with private_key_jwt gets ES256 ID tokens', async (t) => {
      const userId = await createUser(env.rt, 'keys@example.com', 'correct horse battery', ['--name', 'Key User']);
      // openid-client signs its assertions (iat, nbf, exp) by the wall clock: bring the server's
      // manual clock, frozen since the env was built, up to it
      env.clock.set(Date.now());
      const config = await oidc.discovery(new URL(issuer), clientId, { id_token_signed_response_alg: 'ES256' }, oidc.PrivateKeyJwt({ key: registered.privateKey, kid }), {
        execute: [oidc.allowInsecureRequests],
      });
      t.ok(config.serverMetadata().id_token_signing_alg_values_supported?.includes('ES256'), 'discovery lists ES256');
      t.ok(config.serverMetadata().token_endpoint_auth_methods_supported?.includes('private_key_jwt'));
      const verifier = oidc.randomPKCECodeVerifier();
      const nonce = oidc.randomNonce();
      const state = oidc.randomState();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid profile',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        nonce,
        state,
      });
      const done = await authorizeWithLogin(new Browser(issuer), url.href, 'keys@example.com', 'correct horse battery');
      t.equal(done.status, 303);
      const tokens = await oidc.authorizationCodeGrant(config, new URL(done.location!), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
      t.equal(decodeProtectedHeader(tokens.id_token!).alg, 'ES256', 'the ID token is ES256');
      const claims = tokens.claims()!;
      t.equal(claims.sub, userId);
      t.equal(claims.aud, clientId);
      t.equal(claims.name, 'Key User');
      t.equal(decodeProtectedHeader(tokens.access_token).alg, 'ES256');
    });
  });
}

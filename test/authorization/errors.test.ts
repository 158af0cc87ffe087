// The error cases of the authorization-code flow, end to end over HTTP: what /authorize shows or
// redirects, what the login and consent forms refuse, what /token refuses — and that every refusal
// leaves the database as it was (no session, no consumed code, no remembered consent).
import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import argon2 from 'argon2';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { cli, createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { Browser, authorizeWithLogin, parseForm, type Step } from '../helpers/http-login.js';
import { createPasswordHasher, type PasswordHasher } from '../../src/accounts/passwords.js';

t.teardown(dropCreatedDatabases);

const PASSWORD = 'correct horse battery';
const REDIRECT = 'http://127.0.0.1:9/cb';
const GENERIC = 'The email or password is incorrect.';

// Every argon2 verification this process runs, by the parameter part of the hash it checked
// ("argon2id$v=19$m=19456,p=1,t=2"): the layer below the PasswordHasher spy.
const argonVerifies: string[] = [];
const argonModule = argon2 as unknown as { verify: typeof argon2.verify };
const realArgonVerify = argonModule.verify;
argonModule.verify = (digest, password, options) => {
  argonVerifies.push(digest.split('$').slice(1, 4).join('$'));
  return realArgonVerify(digest, password, options);
};
t.teardown(() => {
  argonModule.verify = realArgonVerify;
});
/** A hash with weaker, older parameters than PASSWORD_PARAMS. */
const realArgonHash = (password: string) => argon2.hash(password, { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 });

interface HasherCall {
  method: 'verify' | 'verifyDummy';
  password: string;
}

function spyHasher(): { spy: PasswordHasher; calls: HasherCall[] } {
  const real = createPasswordHasher();
  const calls: HasherCall[] = [];
  const spy: PasswordHasher = {
    hash: (p) => real.hash(p),
    needsRehash: (h) => real.needsRehash(h),
    verify: (h, p) => {
      calls.push({ method: 'verify', password: p });
      return real.verify(h, p);
    },
    verifyDummy: (p) => {
      calls.push({ method: 'verifyDummy', password: p });
      return real.verifyDummy(p);
    },
  };
  return { spy, calls };
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = crypto.randomBytes(32).toString('base64url');
  return { verifier, challenge: crypto.createHash('sha256').update(verifier).digest('base64url') };
}

const rand = () => crypto.randomBytes(8).toString('hex');

type Params = Record<string, string | string[] | undefined>;

function withParams(base: string, params: Params): string {
  const u = new URL(base);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) u.searchParams.append(k, x);
  }
  return u.href;
}

function setCookies(step: Step): string[] {
  return step.res.headers.getSetCookie();
}

function errorText(body: string): string | undefined {
  return /<p class="error" role="alert">([^<]*)<\/p>/.exec(body)?.[1];
}

for (const backend of backends()) {
  t.test(`authorization errors on ${backend.name}`, async (t) => {
    const { spy, calls } = spyHasher();
    const env: TestEnv = await createTestEnv(await backend.create(), {
      listen: true,
      passwords: spy,
      env: { LOGIN_FAILURES_PER_ACCOUNT: '3', CLIENT_AUTH_FAILURES_PER_CLIENT: '3', SESSION_IDLE_TTL: '3600', SESSION_ABSOLUTE_TTL: '7200' },
    });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const db = env.rt.db;

    const conf = await createClient(env.rt, ['--name', 'Conf App', '--redirect-uri', REDIRECT]);
    const conf2 = await createClient(env.rt, ['--name', 'Other App', '--redirect-uri', REDIRECT]);
    const pub = await createClient(env.rt, ['--name', 'Native App', '--public', '--redirect-uri', REDIRECT]);
    const opt = await createClient(env.rt, ['--name', 'Legacy App', '--pkce-optional', '--redirect-uri', REDIRECT]);
    const fp = await createClient(env.rt, ['--name', 'Our Own App', '--first-party', '--redirect-uri', REDIRECT]);

    const authorizeUrl = (params: Params) => withParams(`${issuer}/authorize`, params);
    /** A valid code request for `client`, with S256 PKCE unless `challenge: undefined` is given. */
    function codeRequest(client: TestClient, extra: Params = {}): { url: string; verifier: string; state: string } {
      const p = pkce();
      const state = rand();
      const url = authorizeUrl({
        client_id: client.clientId,
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope: 'openid',
        state,
        code_challenge: p.challenge,
        code_challenge_method: 'S256',
        ...extra,
      });
      return { url, verifier: p.verifier, state };
    }

    async function count(table: 'login_sessions' | 'interactions' | 'consents'): Promise<number> {
      const r = await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      return Number(r.n);
    }
    async function liveSessions(): Promise<number> {
      const r = await db.selectFrom('login_sessions').select((eb) => eb.fn.countAll<string>().as('n')).where('ended_at', 'is', null).executeTakeFirstOrThrow();
      return Number(r.n);
    }
    const userinfoStatus = async (at: string) => (await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status;
    /** Codes redeemed: each redemption creates one family, recording the code's id. */
    async function consumedCodes(): Promise<number> {
      const r = await db.selectFrom('refresh_families').select((eb) => eb.fn.countAll<string>().as('n')).where('code_digest', 'is not', null).executeTakeFirstOrThrow();
      return Number(r.n);
    }

    function expectRedirectError(t: Test, step: Step, error: string, state: string | undefined) {
      t.equal(step.status, 303, `${error}: 303`);
      const u = new URL(step.location ?? 'http://missing/');
      t.equal(`${u.origin}${u.pathname}`, REDIRECT, `${error}: back to the registered redirect URI`);
      t.equal(u.searchParams.get('error'), error);
      t.ok(u.searchParams.get('error_description'), 'with a description');
      t.equal(u.searchParams.get('state'), state ?? null, 'state echoed');
      t.equal(u.searchParams.get('iss'), issuer, 'RFC 9207 iss');
      t.equal(u.searchParams.get('code'), null, 'no code');
      t.equal(step.res.headers.get('cache-control'), 'no-store', 'authorization responses are not cached');
    }

    function expectErrorPage(t: Test, step: Step, what: string) {
      t.equal(step.status, 400, `${what}: 400`);
      t.equal(step.location, undefined, `${what}: never redirected`);
      t.match(step.res.headers.get('content-type'), /^text\/html/, `${what}: an HTML page`);
      t.equal(step.res.headers.get('cache-control'), 'no-store');
      t.match(step.body, 'This request cannot be completed');
    }

    /** Log in (and consent) through the pages; the code and what the client needs to redeem it. */
    async function obtainCode(browser: Browser, client: TestClient, email: string, extra: Params = {}, consent: 'approve' | 'deny' = 'approve') {
      const req = codeRequest(client, extra);
      const step = await authorizeWithLogin(browser, req.url, email, PASSWORD, { consent });
      if (step.status !== 303 || !step.location?.startsWith(REDIRECT)) throw new Error(`the flow did not end at the client: ${step.status} ${step.location ?? step.body.slice(0, 200)}`);
      const cb = new URL(step.location);
      return { code: cb.searchParams.get('code') ?? '', verifier: req.verifier, state: req.state, cb, step };
    }

    async function token(form: Record<string, string | undefined>, headers: Record<string, string> = {}) {
      const body = new URLSearchParams();
      for (const [k, v] of Object.entries(form)) if (v !== undefined) body.append(k, v);
      const res = await fetch(`${issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
      return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
    }
    const basic = (c: TestClient, secret = c.clientSecret!) => ({
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    });
    const redeem = (c: TestClient, code: string, verifier: string | undefined, extra: Record<string, string> = {}) =>
      token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, ...extra }, basic(c));

    async function loginPageFor(browser: Browser, url: string): Promise<Step> {
      const step = await browser.follow(await browser.get(url));
      if (step.status !== 200 || !step.body.includes('name="password"')) throw new Error(`expected the login page, got ${step.status} ${step.location ?? ''}`);
      return step;
    }

    t.test('/authorize: an unverified client or redirect URI gets our error page, never a redirect', async (t) => {
      const interactions = await count('interactions');
      const b = new Browser(issuer);
      for (const uri of ['http://127.0.0.1:9/cb/', 'http://127.0.0.1:10/cb', 'http://127.0.0.1:9/cb?x=1', 'https://evil.example/cb', 'HTTP://127.0.0.1:9/cb']) {
        const step = await b.get(codeRequest(conf, { redirect_uri: uri }).url);
        expectErrorPage(t, step, `redirect_uri ${uri}`);
        t.match(step.body, /redirect_uri/);
      }
      // a public client's loopback wildcard covers the port, never the path or the host
      expectErrorPage(t, await b.get(codeRequest(pub, { redirect_uri: 'http://127.0.0.1:9/other' }).url), 'public client, another path');
      expectErrorPage(t, await b.get(codeRequest(pub, { redirect_uri: 'http://localhost:9/cb' }).url), 'public client, another host');
      t.equal((await b.get(codeRequest(pub, { redirect_uri: 'http://127.0.0.1:4711/cb' }).url)).status, 303, 'public loopback redirect on another port (RFC 8252 §7.3)');

      expectErrorPage(t, await b.get(codeRequest({ clientId: 'no-such-client' }).url), 'unknown client');
      expectErrorPage(t, await b.get(codeRequest(conf, { client_id: undefined }).url), 'missing client_id');
      expectErrorPage(t, await b.get(codeRequest(conf, { client_id: [conf.clientId, conf.clientId] }).url), 'repeated client_id');
      expectErrorPage(t, await b.get(codeRequest(conf, { redirect_uri: [REDIRECT, REDIRECT] }).url), 'repeated redirect_uri');
      expectErrorPage(t, await b.get(codeRequest(conf, { redirect_uri: undefined }).url), 'missing redirect_uri in an OIDC request');
      t.equal(await count('interactions'), interactions, 'nothing was written, not even for the valid public request (interactions are sealed)');
    });

    t.test('/authorize: later errors are redirected with error, state and iss', async (t) => {
      const interactions = await count('interactions');
      const b = new Browser(issuer);
      let r = codeRequest(conf, { scope: ['openid', 'profile'] });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
      r = codeRequest(conf, { response_type: 'token' });
      expectRedirectError(t, await b.get(r.url), 'unsupported_response_type', r.state);
      r = codeRequest(conf, { response_type: undefined });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
      r = codeRequest(conf, { scope: 'openid api:write' });
      expectRedirectError(t, await b.get(r.url), 'invalid_scope', r.state);
      // PKCE
      r = codeRequest(pub, { code_challenge: undefined, code_challenge_method: undefined });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
      r = codeRequest(conf, { code_challenge: undefined, code_challenge_method: undefined });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
      for (const client of [pub, conf, opt]) {
        r = codeRequest(client, { code_challenge_method: 'plain' });
        expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
        t.match(new URL((await b.get(r.url)).location!).searchParams.get('error_description'), /S256|plain/);
      }
      r = codeRequest(pub, { code_challenge_method: undefined });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
      r = codeRequest(pub, { code_challenge: 'too-short' });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
      // prompt=none without a session
      r = codeRequest(conf, { prompt: 'none' });
      expectRedirectError(t, await b.get(r.url), 'login_required', r.state);
      // no state: none echoed
      r = codeRequest(conf, { response_type: 'token', state: undefined });
      expectRedirectError(t, await b.get(r.url), 'unsupported_response_type', undefined);
      t.equal(await count('interactions'), interactions, 'no interaction was started');

      // the same rules over POST
      const post = await fetch(`${issuer}/authorize`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: conf.clientId, redirect_uri: REDIRECT, response_type: 'token', scope: 'openid', state: 'p1' }),
      });
      t.equal(post.status, 303);
      t.equal(new URL(post.headers.get('location')!).searchParams.get('error'), 'unsupported_response_type');

      // a confidential client registered with --pkce-optional may leave PKCE out
      const ok = await b.get(codeRequest(opt, { code_challenge: undefined, code_challenge_method: undefined }).url);
      t.equal(ok.status, 303);
      t.match(ok.location, `${issuer}/interaction/`, 'the login page, not an error');
      // no CORS on /authorize
      const cors = await fetch(codeRequest(conf).url, { redirect: 'manual', headers: { origin: 'https://evil.example' } });
      t.equal(cors.headers.get('access-control-allow-origin'), null, 'no CORS headers');
    });

    t.test('/token: a failed redemption consumes nothing; replay, another client, expiry', async (t) => {
      await createUser(env.rt, 'code@example.com', PASSWORD);
      const b = new Browser(issuer);
      const { code, verifier, cb, state } = await obtainCode(b, conf, 'code@example.com');
      t.equal(cb.searchParams.get('state'), state);
      t.equal(cb.searchParams.get('iss'), issuer);
      t.ok(code, 'a code');

      const expectInvalidGrant = async (what: string, p: Promise<{ status: number; headers: Headers; json: Record<string, unknown> }>) => {
        const r = await p;
        t.equal(r.status, 400, `${what}: 400`);
        t.equal(r.json.error, 'invalid_grant', `${what}: invalid_grant`);
        t.equal(r.headers.get('cache-control'), 'no-store', `${what}: no-store`);
        t.equal(r.json.access_token, undefined);
      };
      await expectInvalidGrant('missing code_verifier', redeem(conf, code, undefined));
      await expectInvalidGrant('wrong code_verifier', redeem(conf, code, pkce().verifier));
      await expectInvalidGrant('malformed code_verifier', redeem(conf, code, 'short'));
      await expectInvalidGrant('redirect_uri mismatch', redeem(conf, code, verifier, { redirect_uri: 'http://127.0.0.1:9/cb/' }));
      await expectInvalidGrant('code of another client', redeem(conf2, code, verifier));
      await expectInvalidGrant('unknown code', redeem(conf, crypto.randomBytes(32).toString('base64url'), verifier));
      await expectInvalidGrant('forged code of a code’s length', redeem(conf, crypto.randomBytes(Buffer.from(code, 'base64url').length).toString('base64url'), verifier));
      const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      await expectInvalidGrant('altered salt', redeem(conf, flip(code, 3), verifier));
      await expectInvalidGrant('altered ciphertext', redeem(conf, flip(code, 60), verifier));
      await expectInvalidGrant('altered tag', redeem(conf, flip(code, code.length - 3), verifier));
      await expectInvalidGrant('truncated code', redeem(conf, code.slice(0, -4), verifier));
      await expectInvalidGrant('code with a padding character', redeem(conf, `${code}=`, verifier));
      await expectInvalidGrant('code far too long', redeem(conf, code.repeat(3), verifier));
      const wrongSecret = await redeem({ clientId: conf.clientId, clientSecret: 'wrong' }, code, verifier);
      t.equal(wrongSecret.status, 401, 'wrong secret: 401');
      t.equal(wrongSecret.json.error, 'invalid_client');
      t.match(wrongSecret.headers.get('www-authenticate'), /^Basic /);
      t.equal(await consumedCodes(), 0, 'none of the failures consumed the code');

      const good = await redeem(conf, code, verifier);
      t.equal(good.status, 200, 'the code still works after the failures');
      t.equal(good.headers.get('cache-control'), 'no-store');
      t.equal(good.headers.get('pragma'), 'no-cache');
      t.equal(good.json.token_type, 'Bearer');
      t.equal(good.json.scope, 'openid');
      t.ok(good.json.id_token);
      t.equal(await consumedCodes(), 1);
      await expectInvalidGrant('replay', redeem(conf, code, verifier));
      t.equal(await consumedCodes(), 1, 'the replay created nothing');
      t.equal(await userinfoStatus(good.json.access_token as string), 401, 'the replay revoked what the first redemption issued');

      // the same code redeemed by several requests at once: exactly one wins
      const raced = await obtainCode(b, conf, 'code@example.com');
      const results = await Promise.all(Array.from({ length: 5 }, () => redeem(conf, raced.code, raced.verifier)));
      t.same(results.map((r) => r.status).sort(), [200, 400, 400, 400, 400], 'one 200, the others refused');
      t.ok(results.filter((r) => r.status === 400).every((r) => r.json.error === 'invalid_grant'));

      // expiry: SSO and remembered consent give a code at once; the clock moves past CODE_TTL
      const again = codeRequest(conf);
      const direct = await b.get(again.url);
      t.equal(direct.status, 303);
      const code2 = new URL(direct.location!).searchParams.get('code')!;
      t.ok(code2, 'SSO answers with a code');
      env.clock.advance(env.config.codeTtl + 1);
      await expectInvalidGrant('expired code', redeem(conf, code2, again.verifier));
      t.equal(await consumedCodes(), 2, 'the expired code was not consumed');

      // a code of a user disabled since it was issued
      await createUser(env.rt, 'gone@example.com', PASSWORD);
      const g = await obtainCode(new Browser(issuer), conf, 'gone@example.com');
      await cli(env.rt, ['users', 'disable', 'gone@example.com']);
      await expectInvalidGrant('user disabled after the code was issued', redeem(conf, g.code, g.verifier));
    });

    t.test('/token: a code issued without a challenge refuses a code_verifier (downgrade)', async (t) => {
      await createUser(env.rt, 'legacy@example.com', PASSWORD);
      const b = new Browser(issuer);
      const first = await obtainCode(b, opt, 'legacy@example.com', { code_challenge: undefined, code_challenge_method: undefined });
      const down = await redeem(opt, first.code, pkce().verifier);
      t.equal(down.status, 400);
      t.equal(down.json.error, 'invalid_grant');
      const ok = await redeem(opt, first.code, undefined);
      t.equal(ok.status, 200, 'redeemed without a verifier');
      // a --pkce-optional client that sends a challenge is held to it
      const second = await obtainCode(b, opt, 'legacy@example.com');
      const missing = await redeem(opt, second.code, undefined);
      t.equal(missing.json.error, 'invalid_grant');
      t.equal((await redeem(opt, second.code, second.verifier)).status, 200);
    });

    t.test('/token: method, grant type and client authentication errors', async (t) => {
      const c = await createClient(env.rt, ['--name', 'Token Errors', '--redirect-uri', REDIRECT]);
      const get = await fetch(`${issuer}/token`);
      t.equal(get.status, 405, 'GET /token');
      t.equal(get.headers.get('allow'), 'POST');

      let r = await token({ grant_type: 'password', username: 'x', password: 'y' }, basic(c));
      t.equal(r.status, 400);
      t.equal(r.json.error, 'unsupported_grant_type');
      t.equal(r.headers.get('cache-control'), 'no-store');
      r = await token({ code: 'x' }, basic(c));
      t.equal(r.status, 400);
      t.equal(r.json.error, 'invalid_request', 'missing grant_type');
      r = await token({ grant_type: ['authorization_code', 'authorization_code'].join(','), code: 'x' }, basic(c));
      t.equal(r.json.error, 'unsupported_grant_type');

      // two methods at once
      r = await token({ grant_type: 'authorization_code', code: 'x', client_id: c.clientId, client_secret: c.clientSecret! }, basic(c));
      t.equal(r.status, 400);
      t.equal(r.json.error, 'invalid_request', 'basic and post together');

      // the right secret gets past authentication (to the bogus code)
      r = await token({ grant_type: 'authorization_code', code: 'x' }, basic(c));
      t.equal(r.json.error, 'invalid_grant');
      r = await token({ grant_type: 'authorization_code', code: 'x', client_id: c.clientId, client_secret: c.clientSecret! });
      t.equal(r.json.error, 'invalid_grant', 'client_secret_post works too');
      // wrong secret, by either method (3 failures: CLIENT_AUTH_FAILURES_PER_CLIENT)
      r = await token({ grant_type: 'authorization_code', code: 'x', client_id: c.clientId, client_secret: 'wrong' });
      t.equal(r.status, 401);
      t.equal(r.json.error, 'invalid_client');
      t.ok(r.headers.get('www-authenticate'), 'WWW-Authenticate on 401');
      t.equal(r.headers.get('cache-control'), 'no-store');
      r = await token({ grant_type: 'authorization_code', code: 'x' }, basic(c, 'wrong'));
      t.equal(r.status, 401);
      t.match(r.headers.get('www-authenticate'), /^Basic realm=/);
      // a confidential client presenting no secret
      r = await token({ grant_type: 'authorization_code', code: 'x', client_id: c.clientId });
      t.equal(r.status, 401);
      t.equal(r.json.error, 'invalid_client');
    });

    t.test('/token: client-authentication failures are limited per client', async (t) => {
      const c = await createClient(env.rt, ['--name', 'Limited', '--redirect-uri', REDIRECT]);
      const other = await createClient(env.rt, ['--name', 'Unrelated', '--redirect-uri', REDIRECT]);
      const attempt = (client: TestClient, secret?: string) => token({ grant_type: 'authorization_code', code: 'bogus' }, basic(client, secret));
      t.equal((await attempt(c)).json.error, 'invalid_grant', 'authenticates before any failure');
      for (let i = 0; i < env.config.clientAuthFailuresPerClient; i++) t.equal((await attempt(c, 'wrong')).status, 401, `failure ${i + 1}`);
      const limited = await attempt(c);
      t.equal(limited.status, 429, 'limited, even with the right secret');
      t.match(limited.headers.get('retry-after'), /^[1-9]\d*$/, 'Retry-After in seconds');
      t.equal(limited.headers.get('cache-control'), 'no-store');
      t.equal((await attempt(c, 'wrong')).status, 429);
      t.equal((await attempt(other)).json.error, 'invalid_grant', 'another client is not affected');
    });

    t.test('login form: CSRF, origin and the interaction cookie', async (t) => {
      await createUser(env.rt, 'csrf@example.com', PASSWORD);
      const b = new Browser(issuer);
      const page = await loginPageFor(b, codeRequest(conf).url);
      const { action, fields } = parseForm(page.body);
      t.ok(fields.csrf, 'a CSRF token in the form');
      const sessions = await count('login_sessions');
      const verifications = calls.length;
      const refused = async (what: string, form: Record<string, string>, headers?: Record<string, string>) => {
        const r = await b.post(action, form, headers);
        t.equal(r.status, 403, `${what}: 403`);
        t.equal(r.location, undefined, `${what}: no redirect`);
        t.notOk(setCookies(r).some((c) => c.startsWith('lk_session=')), `${what}: no session cookie`);
        t.equal(await count('login_sessions'), sessions, `${what}: no session row`);
      };
      const creds = { username: 'csrf@example.com', password: PASSWORD };
      await refused('no CSRF token', creds);
      await refused('a wrong CSRF token', { ...creds, csrf: crypto.randomBytes(32).toString('base64url') });
      await refused('an empty CSRF token', { ...creds, csrf: '' });
      await refused('another origin', { ...fields, ...creds }, { origin: 'https://evil.example' });
      await refused('Origin: null', { ...fields, ...creds }, { origin: 'null' });
      await refused('a cross-site Referer and no Origin', { ...fields, ...creds }, { referer: 'https://evil.example/page' });
      await refused('neither Origin nor Referer', { ...fields, ...creds }, {});
      t.equal(calls.length, verifications, 'no password was checked for a refused form');

      // the CSRF token of another interaction does not fit this one
      const other = new Browser(issuer);
      const otherPage = await loginPageFor(other, codeRequest(conf).url);
      await refused("another interaction's token", { ...creds, csrf: parseForm(otherPage.body).fields.csrf! });
      // the form posted from a browser that did not start the interaction
      const stranger = await other.post(action, { ...fields, ...creds });
      t.equal(stranger.status, 400, 'another browser (no interaction cookie) is refused');
      t.equal(await count('login_sessions'), sessions);

      // a same-origin Referer without Origin is accepted, and so is the right form
      const ok = await b.post(action, { ...fields, ...creds }, { referer: page.url });
      t.equal(ok.status, 303, 'the right form logs in');
      t.equal(await count('login_sessions'), sessions + 1);

      // the consent form has the same protections
      const consent = await b.follow(ok);
      t.match(consent.body, 'name="decision"');
      const cf = parseForm(consent.body);
      const consents = await count('consents');
      for (const [what, form, headers] of [
        ['no CSRF token', { decision: 'approve' }, { origin: issuer }],
        ['wrong CSRF token', { decision: 'approve', csrf: 'x'.repeat(43) }, { origin: issuer }],
        ['another origin', { ...cf.fields, decision: 'approve' }, { origin: 'https://evil.example' }],
      ] as const) {
        const r = await b.post(cf.action, form, headers);
        t.equal(r.status, 403, `consent, ${what}: 403`);
        t.equal(r.location, undefined);
      }
      t.equal(await count('consents'), consents, 'no consent was remembered');
      const approved = await b.post(cf.action, { ...cf.fields, decision: 'approve' });
      t.equal(approved.status, 303);
      t.ok(new URL(approved.location!).searchParams.get('code'), 'the right consent form gives a code');
      t.equal(await count('consents'), consents + 1);
    });

    t.test('login: wrong password and unknown email look the same and cost the same argon2 verification', async (t) => {
      await createUser(env.rt, 'pw@example.com', PASSWORD);
      const b = new Browser(issuer);
      const page = await loginPageFor(b, codeRequest(conf).url);
      const { action, fields } = parseForm(page.body);
      const sessions = await liveSessions();

      const before = calls.length;
      const argonBefore = argonVerifies.length;
      const wrong = await b.post(action, { ...fields, username: 'pw@example.com', password: 'not the password' });
      t.equal(wrong.status, 401, 'wrong password: 401');
      t.same(calls.slice(before), [{ method: 'verify', password: 'not the password' }], 'a known email: verify against its hash');
      const knownArgon = argonVerifies.slice(argonBefore);
      t.equal(knownArgon.length, 1, 'one argon2 verification');

      const before2 = calls.length;
      const argonBefore2 = argonVerifies.length;
      const unknown = await b.post(action, { ...fields, username: 'nobody@example.com', password: 'not the password' });
      t.equal(unknown.status, 401, 'unknown email: 401');
      t.same(calls.slice(before2), [{ method: 'verifyDummy', password: 'not the password' }], 'an unknown email: verify against the dummy hash');
      t.same(argonVerifies.slice(argonBefore2), knownArgon, 'the same argon2 verification (same parameters) as for a known email');
      t.match(knownArgon[0], /^argon2id\$v=19\$m=19456,p=1,t=2$/);

      const empty = await b.post(action, { ...fields, username: '', password: 'x' });
      t.equal(empty.status, 401, 'no email at all');

      t.equal(errorText(wrong.body), GENERIC, 'one generic message');
      t.equal(errorText(unknown.body), errorText(wrong.body), 'the same message for an unknown email');
      t.equal(errorText(empty.body), GENERIC);
      for (const s of [wrong, unknown, empty]) {
        t.notOk(setCookies(s).some((c) => c.startsWith('lk_session=')), 'no session cookie');
        t.equal(s.res.headers.get('cache-control'), 'no-store');
        t.match(s.body, 'name="password"', 'the login form again');
      }
      t.equal(await liveSessions(), sessions, 'no session row');
      // the form still works (same interaction, same CSRF token)
      const ok = await b.post(action, { ...fields, username: 'PW@example.com', password: PASSWORD });
      t.equal(ok.status, 303, 'the right password, email in another case');
      t.equal(await liveSessions(), sessions + 1);
    });

    t.test('a disabled user cannot log in, and their existing session no longer counts', async (t) => {
      await createUser(env.rt, 'dis@example.com', PASSWORD);
      const b = new Browser(issuer);
      await obtainCode(b, conf, 'dis@example.com');
      const sso = await b.get(codeRequest(conf).url);
      t.ok(new URL(sso.location!).searchParams.get('code'), 'SSO while enabled');

      await cli(env.rt, ['users', 'disable', 'dis@example.com']);
      const req = codeRequest(conf);
      const next = await b.get(req.url);
      t.match(next.location, `${issuer}/interaction/`, 'no code: the session no longer counts');
      const page = await b.follow(next);
      t.match(page.body, 'name="password"', 'the login page is shown');
      t.notMatch(page.body, 'name="decision"');
      const none = codeRequest(conf, { prompt: 'none' });
      expectRedirectError(t, await b.get(none.url), 'login_required', none.state);

      const sessions = await liveSessions();
      const { action, fields } = parseForm(page.body);
      const r = await b.post(action, { ...fields, username: 'dis@example.com', password: PASSWORD });
      t.equal(r.status, 401, 'the right password of a disabled user');
      t.equal(errorText(r.body), GENERIC, 'the generic message');
      t.notOk(setCookies(r).some((c) => c.startsWith('lk_session=')));
      t.equal(await liveSessions(), sessions, 'no session');

      await cli(env.rt, ['users', 'enable', 'dis@example.com']);
      const again = await b.post(action, { ...fields, username: 'dis@example.com', password: PASSWORD });
      t.equal(again.status, 303, 'enabled again, the login works');
    });

    t.test('failed logins are limited per account; successful ones are never counted', async (t) => {
      await createUser(env.rt, 'rl@example.com', PASSWORD);
      await createUser(env.rt, 'ok@example.com', PASSWORD);
      const max = env.config.loginFailuresPerAccount;
      t.equal(max, 3);

      // successes first: many more than the limit, then failures below it, then a success again
      for (let i = 0; i < max + 1; i++) {
        const r = await obtainCode(new Browser(issuer), fp, 'ok@example.com');
        t.ok(r.code, `successful login ${i + 1}`);
      }
      const b0 = new Browser(issuer);
      const p0 = parseForm((await loginPageFor(b0, codeRequest(fp).url)).body);
      for (let i = 0; i < max - 1; i++) t.equal((await b0.post(p0.action, { ...p0.fields, username: 'ok@example.com', password: 'nope' })).status, 401);
      t.equal((await b0.post(p0.action, { ...p0.fields, username: 'ok@example.com', password: PASSWORD })).status, 303, 'successes were not counted');

      const b = new Browser(issuer);
      const { action, fields } = parseForm((await loginPageFor(b, codeRequest(conf).url)).body);
      for (let i = 0; i < max; i++) {
        const r = await b.post(action, { ...fields, username: i === 1 ? 'RL@example.com' : 'rl@example.com', password: `wrong ${i}` });
        t.equal(r.status, 401, `failure ${i + 1}`);
      }
      const sessions = await liveSessions();
      const verifications = calls.length;
      const limited = await b.post(action, { ...fields, username: 'rl@example.com', password: PASSWORD });
      t.equal(limited.status, 429, 'limited, even with the right password');
      t.match(limited.res.headers.get('retry-after'), /^[1-9]\d*$/, 'Retry-After in seconds');
      t.match(limited.body, 'name="password"', 'the login page, with a message');
      t.notOk(setCookies(limited).some((c) => c.startsWith('lk_session=')));
      t.equal(await liveSessions(), sessions, 'no session');
      t.equal(calls.length, verifications, 'no argon2 work for a limited account');
      t.equal((await b.post(action, { ...fields, username: 'Rl@Example.com', password: PASSWORD })).status, 429, 'the account in another case');
      // another account from the same IP is not affected
      await createUser(env.rt, 'neighbour@example.com', PASSWORD);
      t.equal((await b.post(action, { ...fields, username: 'neighbour@example.com', password: PASSWORD })).status, 303, 'another account logs in');
    });

    t.test('prompt=none: login_required without a session, consent_required without consent', async (t) => {
      await createUser(env.rt, 'none@example.com', PASSWORD);
      const b = new Browser(issuer);
      let r = codeRequest(conf, { prompt: 'none' });
      expectRedirectError(t, await b.get(r.url), 'login_required', r.state);
      await obtainCode(b, conf, 'none@example.com', { scope: 'openid' });
      r = codeRequest(conf, { prompt: 'none', scope: 'openid profile' });
      expectRedirectError(t, await b.get(r.url), 'consent_required', r.state);
      r = codeRequest(conf2, { prompt: 'none' });
      expectRedirectError(t, await b.get(r.url), 'consent_required', r.state);
      r = codeRequest(conf, { prompt: 'none', max_age: '0' });
      expectRedirectError(t, await b.get(r.url), 'login_required', r.state);
      r = codeRequest(conf, { prompt: 'none', scope: 'openid' });
      const ok = await b.get(r.url);
      t.equal(ok.status, 303);
      const cb = new URL(ok.location!);
      t.ok(cb.searchParams.get('code'), 'prompt=none with session and consent: a code');
      t.equal(cb.searchParams.get('state'), r.state);
      t.equal(cb.searchParams.get('iss'), issuer);
      r = codeRequest(fp, { prompt: 'none', scope: 'openid profile email' });
      t.ok(new URL((await b.get(r.url)).location!).searchParams.get('code'), 'a first-party client needs no consent');
    });

    t.test('consent: deny, remembered per user, client and scopes', async (t) => {
      const userId = await createUser(env.rt, 'consent@example.com', PASSWORD);
      const b = new Browser(issuer);
      const denied = await obtainCode(b, conf, 'consent@example.com', { scope: 'openid profile' }, 'deny');
      expectRedirectError(t, denied.step, 'access_denied', denied.state);
      t.equal(new URL(denied.step.location!).searchParams.get('code'), null, 'no code');
      t.same(await db.selectFrom('consents').selectAll().where('user_id', '=', userId).execute(), [], 'nothing remembered');

      // approve once: asked
      let r = codeRequest(conf, { scope: 'openid profile' });
      let step = await b.follow(await b.get(r.url));
      t.match(step.body, 'name="decision"', 'asked for consent (logged in already)');
      t.match(step.body, 'Conf App');
      t.match(step.body, 'See your name');
      const cf = parseForm(step.body);
      step = await b.post(cf.action, { ...cf.fields, decision: 'approve' });
      t.ok(new URL(step.location!).searchParams.get('code'));
      // second time, same or fewer scopes: no consent page
      for (const scope of ['openid profile', 'profile openid', 'openid']) {
        const s = await b.get(codeRequest(conf, { scope }).url);
        t.ok(new URL(s.location!).searchParams.get('code'), `remembered: ${scope}`);
      }
      // a wider scope asks again, for this client only
      step = await b.follow(await b.get(codeRequest(conf, { scope: 'openid email' }).url));
      t.match(step.body, 'name="decision"', 'a wider scope asks again');
      t.match(step.body, 'See your email address');
      step = await b.follow(await b.get(codeRequest(conf2, { scope: 'openid' }).url));
      t.match(step.body, 'name="decision"', 'another client asks');
      // prompt=consent asks even when remembered
      step = await b.follow(await b.get(codeRequest(conf, { scope: 'openid', prompt: 'consent' }).url));
      t.match(step.body, 'name="decision"', 'prompt=consent asks again');
      // another user of the same client is asked
      await createUser(env.rt, 'consent2@example.com', PASSWORD);
      const b2 = new Browser(issuer);
      const p2 = parseForm((await loginPageFor(b2, codeRequest(conf, { scope: 'openid profile' }).url)).body);
      const after = await b2.follow(await b2.post(p2.action, { ...p2.fields, username: 'consent2@example.com', password: PASSWORD }));
      t.match(after.body, 'name="decision"', 'consent is per user');
    });

    t.test('offline_access only with prompt=consent or for a first-party client', async (t) => {
      await createUser(env.rt, 'offline@example.com', PASSWORD);
      const b = new Browser(issuer);
      let r = await obtainCode(b, conf, 'offline@example.com', { scope: 'openid offline_access' });
      let tok = await redeem(conf, r.code, r.verifier);
      t.equal(tok.status, 200);
      t.equal(tok.json.scope, 'openid', 'dropped without prompt=consent');

      const req = codeRequest(conf, { scope: 'openid offline_access', prompt: 'consent' });
      let step = await b.follow(await b.get(req.url));
      t.match(step.body, 'Stay signed in', 'the consent page names offline access');
      const cf = parseForm(step.body);
      step = await b.post(cf.action, { ...cf.fields, decision: 'approve' });
      tok = await redeem(conf, new URL(step.location!).searchParams.get('code')!, req.verifier);
      t.equal(tok.json.scope, 'openid offline_access', 'granted with prompt=consent');

      r = await obtainCode(b, fp, 'offline@example.com', { scope: 'openid offline_access' });
      tok = await redeem(fp, r.code, r.verifier);
      t.equal(tok.json.scope, 'openid offline_access', 'granted to a first-party client');

      const noRefresh = await createClient(env.rt, ['--name', 'No Refresh', '--first-party', '--grant-types', 'authorization_code', '--redirect-uri', REDIRECT]);
      r = await obtainCode(b, noRefresh, 'offline@example.com', { scope: 'openid offline_access' });
      tok = await redeem(noRefresh, r.code, r.verifier);
      t.equal(tok.json.scope, 'openid', 'dropped for a client that may not refresh');
    });

    t.test('max_age and prompt=login force a new login', async (t) => {
      await createUser(env.rt, 'fresh@example.com', PASSWORD);
      const b = new Browser(issuer);
      await obtainCode(b, fp, 'fresh@example.com');
      for (const extra of [{ max_age: '0' }, { prompt: 'login' }]) {
        const s = await b.get(codeRequest(fp, extra).url);
        t.match(s.location, `${issuer}/interaction/`, `${JSON.stringify(extra)}: no code`);
        t.match((await b.follow(s)).body, 'name="password"', `${JSON.stringify(extra)}: the login page`);
      }
      t.ok(new URL((await b.get(codeRequest(fp, { max_age: '3600' }).url)).location!).searchParams.get('code'), 'max_age=3600 within it: SSO');
      env.clock.advance(120);
      const s = await b.get(codeRequest(fp, { max_age: '60' }).url);
      t.match(s.location, `${issuer}/interaction/`, 'max_age=60 two minutes after the login');
      // the fresh login satisfies max_age=0 and yields a code with a new auth_time
      const r = codeRequest(fp, { max_age: '0' });
      const done = await authorizeWithLogin(b, r.url, 'fresh@example.com', PASSWORD);
      const code = new URL(done.location!).searchParams.get('code');
      t.ok(code, 'a code after the fresh login');
      const tok = await redeem(fp, code!, r.verifier);
      const idToken = JSON.parse(Buffer.from(String(tok.json.id_token).split('.')[1]!, 'base64url').toString()) as { auth_time: number };
      t.equal(idToken.auth_time, Math.floor(env.clock.now() / 1000), 'auth_time is the fresh login');
    });

    t.test('session cookie: HttpOnly, SameSite=Lax, Path=/, signed, new at every login', async (t) => {
      await createUser(env.rt, 'cookie@example.com', PASSWORD);
      const b = new Browser(issuer);
      const start = await b.get(codeRequest(fp).url);
      const ic = setCookies(start).find((c) => c.startsWith('lk_interaction='));
      t.ok(ic, 'an interaction cookie');
      t.match(ic, /; HttpOnly/i);
      t.match(ic, /; SameSite=Lax/i);
      t.match(ic, /; Path=\//);
      t.notMatch(ic, /; Secure/i, 'not Secure on an http loopback issuer');
      const page = await b.follow(start);
      const { action, fields } = parseForm(page.body);
      const login = await b.post(action, { ...fields, username: 'cookie@example.com', password: PASSWORD });
      t.equal(login.status, 303);
      const sc = setCookies(login).find((c) => c.startsWith('lk_session='))!;
      t.ok(sc, 'a session cookie');
      t.match(sc, /; HttpOnly/i);
      t.match(sc, /; SameSite=Lax/i);
      t.match(sc, /; Path=\//);
      t.notMatch(sc, /; Domain=/i);
      const first = b.jar.get('lk_session')!;
      const unsigned = env.app.unsignCookie(decodeURIComponent(first));
      t.ok(unsigned.valid, 'signed with the server secret');
      t.ok(unsigned.value && Buffer.from(unsigned.value, 'base64url').length >= 32, '≥ 256 bits');
      const rows = await db.selectFrom('login_sessions').select('id_digest').execute();
      t.ok(rows.some((s) => s.id_digest === crypto.createHash('sha256').update(unsigned.value!).digest('base64url')), 'stored as its SHA-256 digest');
      t.notOk(rows.some((s) => s.id_digest === unsigned.value), 'the session id itself is not stored');

      // a tampered signature is not a session
      const [value] = decodeURIComponent(first).split('.');
      const forged = `${value}.${crypto.randomBytes(32).toString('base64url').slice(0, 43)}`;
      const res = await fetch(codeRequest(fp).url, { redirect: 'manual', headers: { cookie: `lk_session=${encodeURIComponent(forged)}` } });
      t.match(res.headers.get('location'), `${issuer}/interaction/`, 'a forged signature gives no SSO');
      const unsignedOnly = await fetch(codeRequest(fp).url, { redirect: 'manual', headers: { cookie: `lk_session=${value}` } });
      t.match(unsignedOnly.headers.get('location'), `${issuer}/interaction/`, 'an unsigned id gives no SSO');

      // SSO with the cookie, then a new login (prompt=login) gives a new cookie and ends the old session
      t.ok(new URL((await b.get(codeRequest(fp).url)).location!).searchParams.get('code'), 'SSO');
      const done = await authorizeWithLogin(b, codeRequest(fp, { prompt: 'login' }).url, 'cookie@example.com', PASSWORD);
      t.ok(new URL(done.location!).searchParams.get('code'));
      const second = b.jar.get('lk_session')!;
      t.not(second, first, 'a new session id at login');
      const old = await fetch(codeRequest(fp).url, { redirect: 'manual', headers: { cookie: `lk_session=${first}` } });
      t.match(old.headers.get('location'), `${issuer}/interaction/`, 'the previous session id no longer counts');
      // a session cookie planted before the login (fixation) is replaced, not adopted
      const planted = new Browser(issuer);
      const plantedPage = await loginPageFor(planted, codeRequest(fp).url);
      const pf = parseForm(plantedPage.body);
      const fixed = await fetch(pf.action, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: `${planted.jar.header()}; lk_session=${second}`, origin: issuer, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...pf.fields, username: 'cookie@example.com', password: PASSWORD }),
      });
      t.equal(fixed.status, 303);
      const issued = fixed.headers.getSetCookie().find((c) => c.startsWith('lk_session='));
      t.ok(issued && !issued.startsWith(`lk_session=${second};`), 'a new id, not the planted one');
    });

    t.test('login page: login_hint prefilled and escaped; unknown parameters ignored; bad prompt values', async (t) => {
      const b = new Browser(issuer);
      const hint = '"><script>alert(1)</script>@example.com';
      const page = await loginPageFor(b, codeRequest(conf, { login_hint: hint, foo: 'bar', claims_locales: 'de' }).url);
      t.notMatch(page.body, '<script>', 'no markup from the request');
      t.match(page.body, 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@example.com"', 'login_hint escaped in the email field');
      let r = codeRequest(conf, { prompt: 'none login' });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
      r = codeRequest(conf, { prompt: 'sometimes' });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
      r = codeRequest(conf, { max_age: '-1' });
      expectRedirectError(t, await b.get(r.url), 'invalid_request', r.state);
    });

    t.test('a password hashed with older argon2 parameters is rehashed at login', async (t) => {
      const id = await createUser(env.rt, 'old@example.com', PASSWORD);
      const old = await realArgonHash(PASSWORD);
      await db.updateTable('users').set({ password_hash: old }).where('id', '=', id).execute();
      const done = await obtainCode(new Browser(issuer), fp, 'old@example.com');
      t.ok(done.code, 'the old hash still logs in');
      const row = await db.selectFrom('users').select('password_hash').where('id', '=', id).executeTakeFirstOrThrow();
      t.not(row.password_hash, old, 'rehashed');
      t.match(row.password_hash, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/, 'with the current parameters');
      t.ok(await realArgonVerify(row.password_hash, PASSWORD));
    });

    t.test('an expired interaction is refused and logs nobody in', async (t) => {
      await createUser(env.rt, 'slow@example.com', PASSWORD);
      const b = new Browser(issuer);
      const page = await loginPageFor(b, codeRequest(conf).url);
      const { action, fields } = parseForm(page.body);
      env.clock.advance(env.config.interactionTtl + 1);
      const sessions = await liveSessions();
      const r = await b.post(action, { ...fields, username: 'slow@example.com', password: PASSWORD });
      t.equal(r.status, 400);
      t.match(r.body, 'expired');
      t.equal(r.location, undefined);
      t.equal(await liveSessions(), sessions, 'no session');
      t.equal((await b.get(page.url)).status, 400, 'the page is gone too');
    });

    t.test('login sessions expire when idle and at their absolute limit', async (t) => {
      t.equal(env.config.sessionIdleTtl, 3600);
      t.equal(env.config.sessionAbsoluteTtl, 7200);
      await createUser(env.rt, 'idle@example.com', PASSWORD);
      const b = new Browser(issuer);
      await obtainCode(b, fp, 'idle@example.com');
      const sso = async () => new URL((await b.get(codeRequest(fp).url)).location!).searchParams.has('code');
      env.clock.advance(3000);
      t.ok(await sso(), 'used within the idle limit: SSO (and the idle expiry slides)');
      env.clock.advance(3000);
      t.ok(await sso(), 'still within the slid idle limit');
      env.clock.advance(1300);
      t.notOk(await sso(), 'past the absolute limit');

      const b2 = new Browser(issuer);
      await obtainCode(b2, fp, 'idle@example.com');
      env.clock.advance(3601);
      t.notOk(new URL((await b2.get(codeRequest(fp).url)).location!).searchParams.has('code'), 'idle past the limit');
    });
  });

  t.test(`https issuer on ${backend.name}: __Host- cookies, Secure, upgrade-insecure-requests`, async (t) => {
    const env = await createTestEnv(await backend.create(), { env: { ISSUER: 'https://auth.example.test' } });
    t.teardown(() => env.close());
    const issuer = 'https://auth.example.test';
    t.equal(env.config.issuer, issuer);
    await createUser(env.rt, 'tls@example.com', PASSWORD);
    const c = await createClient(env.rt, ['--name', 'TLS App', '--redirect-uri', 'https://app.example.test/cb']);
    const p = pkce();
    const query = { client_id: c.clientId, redirect_uri: 'https://app.example.test/cb', response_type: 'code', scope: 'openid', state: 'tls', code_challenge: p.challenge, code_challenge_method: 'S256' };

    const cookieHeader = (res: { headers: Record<string, unknown> }): string[] => {
      const h = res.headers['set-cookie'];
      return h === undefined ? [] : Array.isArray(h) ? (h as string[]) : [String(h)];
    };
    const jar = new Map<string, string>();
    const keep = (cookies: string[]) => {
      for (const sc of cookies) {
        const [pair] = sc.split(';');
        const eq = pair!.indexOf('=');
        jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
      }
    };
    const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');

    const start = await env.app.inject({ method: 'GET', url: '/authorize', query });
    t.equal(start.statusCode, 303);
    t.match(start.headers.location, `${issuer}/interaction/`, 'URLs are built from the issuer');
    const ic = cookieHeader(start);
    t.equal(ic.length, 1);
    t.match(ic[0], /^__Host-lk_interaction=/, '__Host- prefix');
    t.match(ic[0], /; Secure/);
    t.match(ic[0], /; Path=\//);
    t.match(ic[0], /; HttpOnly/);
    t.match(ic[0], /; SameSite=Lax/);
    t.notMatch(ic[0], /; Domain=/i, '__Host- cookies have no Domain');
    keep(ic);

    const page = await env.app.inject({ method: 'GET', url: ((u) => u.pathname + u.search)(new URL(String(start.headers.location))), headers: { cookie: cookie() } }); // the pending request is sealed in the query
    t.equal(page.statusCode, 200);
    const csp = String(page.headers['content-security-policy']);
    t.match(csp, /upgrade-insecure-requests/);
    t.match(csp, /form-action 'self' https:\/\/app\.example\.test/);
    t.match(csp, /frame-ancestors 'none'/);
    t.match(page.headers['strict-transport-security'], /max-age=/);
    const { action, fields } = parseForm(page.body);
    t.ok(action.startsWith(`${issuer}/interaction/`));

    const cross = await env.app.inject({
      method: 'POST',
      url: new URL(action).pathname,
      headers: { cookie: cookie(), origin: 'http://auth.example.test', 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ ...fields, username: 'tls@example.com', password: PASSWORD }).toString(),
    });
    t.equal(cross.statusCode, 403, 'the http origin of the same host is another origin');

    const login = await env.app.inject({
      method: 'POST',
      url: new URL(action).pathname,
      headers: { cookie: cookie(), origin: issuer, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ ...fields, username: 'tls@example.com', password: PASSWORD }).toString(),
    });
    t.equal(login.statusCode, 303);
    const sc = cookieHeader(login).find((x) => x.startsWith('__Host-lk_session='));
    t.ok(sc, '__Host-lk_session');
    t.match(sc, /; Secure/);
    t.match(sc, /; HttpOnly/);
    t.match(sc, /; SameSite=Lax/);
    t.match(sc, /; Path=\//);
    keep(cookieHeader(login));
    // consent page, then the code
    const consent = await env.app.inject({ method: 'GET', url: ((u) => u.pathname + u.search)(new URL(String(login.headers.location))), headers: { cookie: cookie() } });
    t.match(String(consent.headers['content-security-policy']), /upgrade-insecure-requests/);
    const cf = parseForm(consent.body);
    const approved = await env.app.inject({
      method: 'POST',
      url: new URL(cf.action).pathname,
      headers: { cookie: cookie(), origin: issuer, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ ...cf.fields, decision: 'approve' }).toString(),
    });
    t.equal(approved.statusCode, 303);
    // the finished interaction's cookie is cleared; a __Host- cookie is only replaced by a Secure one
    const cleared = cookieHeader(approved).find((x) => x.startsWith('__Host-lk_interaction='));
    t.ok(cleared, 'the interaction cookie is cleared');
    t.match(cleared, /^__Host-lk_interaction=;/);
    t.match(cleared, /Max-Age=0|Expires=Thu, 01 Jan 1970/i);
    t.match(cleared, /; Secure/, 'with Secure, or browsers ignore it');
    t.match(cleared, /; Path=\//);
    const cb = new URL(String(approved.headers.location));
    t.equal(cb.origin, 'https://app.example.test');
    t.equal(cb.searchParams.get('iss'), issuer);
    // SSO with the __Host- cookie; an unprefixed cookie of the same value is ignored
    const sso = await env.app.inject({ method: 'GET', url: '/authorize', query, headers: { cookie: `__Host-lk_session=${jar.get('__Host-lk_session')}` } });
    t.ok(new URL(String(sso.headers.location)).searchParams.get('code'), 'SSO');
    const plain = await env.app.inject({ method: 'GET', url: '/authorize', query, headers: { cookie: `lk_session=${jar.get('__Host-lk_session')}` } });
    t.match(plain.headers.location, `${issuer}/interaction/`, 'the unprefixed name is not read');
  });
}

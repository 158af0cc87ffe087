// Issue 12, the server: every access token carries a status reference; GET /statuslists/:id is a
// signed, cacheable list (typ statuslist+jwt, our keys, sub = its own URI, ttl); every kind of
// revocation that makes /introspect answer inactive sets the token's status to INVALID, and
// nothing else does.
import t from 'tap';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { StatusList } from '@sd-jwt/jwt-status-list';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { cli, createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest, type TokenSet } from '../helpers/flow.js';
import { Browser } from '../helpers/http-login.js';
import { waitFor } from '../helpers/process.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const API = 'https://api.example.com';

interface StatusRef {
  idx: number;
  uri: string;
}

for (const backend of backends()) {
  t.test(`status lists on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true, env: { STATUS_LIST_TTL: '7' } });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', API, '--scopes', 'openid offline_access api:read']);
    const machine = await createClient(e.rt, ['--name', 'Machine', '--grant-types', 'client_credentials', '--scopes', 'jobs', '--audiences', API]);
    const auth = (c: TestClient) => ({ clientId: c.clientId, secret: c.clientSecret });
    let users = 0;
    const newUser = async () => {
      const email = `u${++users}@example.com`;
      await createUser(e.rt, email, 'status password 1');
      return email;
    };
    const login = async (email: string, browser?: Browser, scope = 'openid offline_access api:read'): Promise<TokenSet> =>
      (await loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email, password: 'status password 1', scope, browser })).tokens;
    const ref = (token: string): StatusRef => (decodeJwt(token) as { status: { status_list: StatusRef } }).status.status_list;
    const fetchList = async (uri: string) => {
      const res = await fetch(uri, { headers: { accept: 'application/statuslist+jwt' } });
      return { res, body: await res.text() };
    };
    const status = async (token: string): Promise<number> => {
      const r = ref(token);
      const { res, body } = await fetchList(r.uri);
      if (res.status !== 200) throw new Error(`status list ${r.uri}: ${res.status} ${body}`);
      const { payload } = await jwtVerify(body, jwks, { issuer, typ: 'statuslist+jwt', algorithms: ['ES256'], subject: r.uri, currentDate: new Date(e.clock.now()) });
      const sl = payload.status_list as { bits: 1; lst: string };
      return StatusList.decompressStatusList(sl.lst, sl.bits).getStatus(r.idx);
    };
    const becomes = (token: string, want: number) => waitFor(async () => ((await status(token)) === want ? true : undefined), 10_000, 200);
    const introspect = async (token: string) => (await postForm(`${issuer}/introspect`, { token }, auth(app))).body.active;

    await t.test('tokens carry a status reference; the list is a signed, cacheable JWT', async (t) => {
      const s = await login(await newUser());
      const r = ref(s.access_token);
      t.match(r.uri, new RegExp(`^${issuer}/statuslists/\\d+$`));
      t.type(r.idx, 'number');
      const refreshed = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: s.refresh_token! }, auth(app));
      t.same(ref(refreshed.body.access_token as string), r, 'a refreshed token keeps its family’s reference');
      const cc = await tokenRequest(issuer, { grant_type: 'client_credentials' }, auth(machine));
      t.ok(ref(cc.body.access_token as string).uri, 'client_credentials tokens carry one too');
      t.not(ref(cc.body.access_token as string).idx === r.idx && ref(cc.body.access_token as string).uri === r.uri, true, 'another index');

      const { res, body } = await fetchList(r.uri);
      t.equal(res.status, 200);
      t.equal(res.headers.get('content-type'), 'application/statuslist+jwt');
      t.equal(res.headers.get('cache-control'), 'public, max-age=7');
      const etag = res.headers.get('etag');
      t.ok(etag);
      const header = decodeProtectedHeader(body);
      t.equal(header.typ, 'statuslist+jwt');
      t.equal(header.alg, 'ES256');
      const jwksBody = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
      t.ok(jwksBody.keys.some((k) => k.kid === header.kid), 'signed by a key in the JWKS');
      const { payload } = await jwtVerify(body, jwks, { issuer, typ: 'statuslist+jwt', algorithms: ['ES256'], currentDate: new Date(e.clock.now()) });
      t.equal(payload.sub, r.uri, 'sub is the list’s own URI');
      t.equal(payload.ttl, 7);
      t.ok(typeof payload.iat === 'number' && typeof payload.exp === 'number' && payload.exp > payload.iat);
      t.equal((payload.status_list as { bits: number }).bits, 1);
      t.equal(await status(s.access_token), 0, 'VALID');

      const again = await fetch(r.uri, { headers: { 'if-none-match': etag! } });
      t.equal(again.status, 304, '304 on If-None-Match');
      t.equal((await fetch(`${issuer}/statuslists/999999`)).status, 404, 'an unknown list is 404');
      const junk = await fetch(`${issuer}/statuslists/x-y`);
      t.equal(junk.status, 404, 'a malformed id is 404');
      t.equal((await junk.json() as { error: string }).error, 'not_found');
      const nul = await fetch(`${issuer}/statuslists/1%00`);
      t.equal(nul.status, 400, 'a NUL is invalid_request (the one input rule)');
      t.equal((await nul.json() as { error: string }).error, 'invalid_request');

      const meta = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, string>;
      t.equal(meta.status_list_aggregation_endpoint, `${issuer}/statuslists`);
      const agg = (await (await fetch(meta.status_list_aggregation_endpoint!)).json()) as { status_lists: string[] };
      t.ok(agg.status_lists.includes(r.uri), 'the aggregation endpoint lists the current list');
    });

    // every way a token stops being active at /introspect, and the status list following it
    const cases: Array<[string, () => Promise<{ victim: string; bystander: string }>]> = [
      ['/revoke of the refresh token', async () => {
        const email = await newUser();
        const [s, other] = [await login(email), await login(email)];
        await postForm(`${issuer}/revoke`, { token: s.refresh_token! }, auth(app));
        return { victim: s.access_token, bystander: other.access_token };
      }],
      ['/revoke of the access token (its family with it)', async () => {
        const email = await newUser();
        const [s, other] = [await login(email), await login(email)];
        await postForm(`${issuer}/revoke`, { token: s.access_token }, auth(app));
        const after = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: s.refresh_token! }, auth(app));
        t.equal(after.body.error, 'invalid_grant', 'the family ended with its access token');
        return { victim: s.access_token, bystander: other.access_token };
      }],
      ['refresh-token reuse', async () => {
        const email = await newUser();
        const [s, other] = [await login(email), await login(email)];
        const r1 = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: s.refresh_token! }, auth(app));
        t.equal(r1.status, 200);
        await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: s.refresh_token! }, auth(app));
        return { victim: r1.body.access_token as string, bystander: other.access_token };
      }],
      ['logout', async () => {
        const email = await newUser();
        const browser = new Browser(issuer);
        // logout ends the session's families without offline_access (OIDC Core §11)
        const s = await login(email, browser, 'openid api:read');
        const other = await login(email);
        await browser.get(`${issuer}/logout?id_token_hint=${encodeURIComponent(s.id_token!)}`);
        return { victim: s.access_token, bystander: other.access_token };
      }],
      ['sessions revoke (admin)', async () => {
        const email = await newUser();
        const [s, other] = [await login(email), await login(email)];
        await cli(e.rt, ['sessions', 'revoke', '--family', (decodeJwt(s.access_token) as { fid: string }).fid]);
        return { victim: s.access_token, bystander: other.access_token };
      }],
      ['user disabled', async () => {
        const s = await login(await newUser());
        const other = await login(await newUser());
        await cli(e.rt, ['users', 'disable', `u${users - 1}@example.com`]);
        return { victim: s.access_token, bystander: other.access_token };
      }],
      ['password changed', async () => {
        const s = await login(await newUser());
        const other = await login(await newUser());
        await cli(e.rt, ['users', 'set-password', `u${users - 1}@example.com`, '--password-stdin'], 'a new password 2\n');
        return { victim: s.access_token, bystander: other.access_token };
      }],
      ['user deleted', async () => {
        const s = await login(await newUser());
        const other = await login(await newUser());
        await cli(e.rt, ['users', 'delete', `u${users - 1}@example.com`]);
        return { victim: s.access_token, bystander: other.access_token };
      }],
      ['/revoke of a client_credentials token', async () => {
        const cc = async () => (await tokenRequest(issuer, { grant_type: 'client_credentials' }, auth(machine))).body.access_token as string;
        const victim = await cc();
        const other = await login(await newUser());
        t.equal((await postForm(`${issuer}/revoke`, { token: victim }, auth(machine))).status, 200);
        // the client's tokens shared the index; the next one gets a fresh, valid index
        const next = await waitFor(async () => {
          const tok = await cc();
          return ref(tok).idx !== ref(victim).idx || ref(tok).uri !== ref(victim).uri ? tok : undefined;
        }, 10_000);
        t.equal(await status(next), 0, 'a token issued after the revocation is VALID');
        return { victim, bystander: other.access_token };
      }],
      ['client deleted', async () => {
        const doomed = await createClient(e.rt, ['--name', 'Doomed', '--redirect-uri', REDIRECT, '--first-party', '--grant-types', 'authorization_code,refresh_token,client_credentials', '--audiences', API, '--scopes', 'openid offline_access jobs']);
        const email = await newUser();
        const s = (await loginAndRedeem({ issuer, clientId: doomed.clientId, secret: doomed.clientSecret, redirectUri: REDIRECT, email, password: 'status password 1', scope: 'openid offline_access' })).tokens;
        const cc = (await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'jobs' }, auth(doomed))).body.access_token as string;
        const other = await login(email);
        await cli(e.rt, ['clients', 'delete', doomed.clientId]);
        await t.resolves(becomes(cc, 1), 'the deleted client’s client_credentials token is INVALID too');
        return { victim: s.access_token, bystander: other.access_token };
      }],
    ];
    for (const [name, act] of cases) {
      await t.test(name, async (t) => {
        const { victim, bystander } = await act();
        // our endpoints hear of it within about a second (NOTIFY)
        await t.resolves(waitFor(async () => ((await introspect(victim)) === false ? true : undefined), 10_000), '/introspect: inactive');
        await t.resolves(becomes(victim, 1), 'the revoked token is INVALID in its status list');
        t.equal(await status(bystander), 0, 'another family stays VALID');
        t.equal(await introspect(bystander), true);
      });
    }

    await t.test('indexes are never reused', async (t) => {
      const fams = await e.rt.db.selectFrom('refresh_families').select('status_idx').execute();
      const clients = await e.rt.db.selectFrom('clients').select('cc_status_idx').execute();
      const all = [...fams.map((f) => f.status_idx), ...clients.map((c) => c.cc_status_idx)];
      t.equal(new Set(all).size, all.length, 'one index per family and per client');
    });
  });
}

// /revoke and /introspect beyond families.test.ts: public clients, hints, repeats, expired and
// client_credentials tokens, refresh-token states at introspection, a deleted client's tokens, and
// the failure rate limit on client authentication at both endpoints.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { cli, createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest, type TokenSet } from '../helpers/flow.js';
import { waitFor } from '../helpers/process.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const API = 'https://api.example.com';
const FAILURES = 3;

for (const backend of backends()) {
  t.test(`/revoke and /introspect on ${backend.name}`, async (t) => {
    const e: TestEnv = await createTestEnv(await backend.create(), { listen: true, env: { CLIENT_AUTH_FAILURES_PER_CLIENT: String(FAILURES) } });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const userId = await createUser(e.rt, 'ivy@example.com', 'ivy password 1');
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', API, '--scopes', 'openid offline_access api:read']);
    const pub = await createClient(e.rt, ['--name', 'SPA', '--public', '--redirect-uri', REDIRECT, '--first-party', '--audiences', API, '--scopes', 'openid offline_access api:read']);
    const rs = await createClient(e.rt, ['--name', 'RS', '--grant-types', 'client_credentials', '--scopes', 'introspect', '--resource-server', API]);
    const machine = await createClient(e.rt, ['--name', 'Machine', '--grant-types', 'client_credentials', '--scopes', 'jobs', '--audiences', API]);

    const login = async (c: TestClient = app): Promise<TokenSet> =>
      (await loginAndRedeem({ issuer, clientId: c.clientId, secret: c.clientSecret, redirectUri: REDIRECT, email: 'ivy@example.com', password: 'ivy password 1', scope: 'openid offline_access api:read' })).tokens;
    const auth = (c: TestClient) => ({ clientId: c.clientId, secret: c.clientSecret });
    const revoke = (c: TestClient, token: string, hint?: string) => postForm(`${issuer}/revoke`, { token, ...(hint ? { token_type_hint: hint } : {}) }, auth(c));
    const introspect = async (c: TestClient, token: string) => (await postForm(`${issuer}/introspect`, { token }, auth(c))).body;
    const refresh = (c: TestClient, rt: string) => tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: rt }, auth(c));
    const denylisted = async () => (await e.rt.db.selectFrom('denylist').select('jti').execute()).length;

    await t.test('a public client revokes its own tokens by client_id, never another client’s', async (t) => {
      const s = await login(pub);
      t.ok(s.refresh_token);
      const foreign = await revoke(pub, (await login(app)).refresh_token!);
      t.equal(foreign.status, 400);
      t.equal(foreign.body.error, 'unauthorized_client');
      const r = await revoke(pub, s.refresh_token!);
      t.equal(r.status, 200);
      t.equal(r.headers.get('cache-control'), 'no-store');
      t.equal((await refresh(pub, s.refresh_token!)).body.error, 'invalid_grant', 'revoked');
      const at = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${s.access_token}` } });
      t.equal(at.status, 401, 'the family’s access token with it');
    });

    await t.test('the hint only orders the lookups; repeats and expired tokens are 200 no-ops', async (t) => {
      const s = await login();
      t.equal((await revoke(app, s.refresh_token!, 'access_token')).status, 200, 'a refresh token with the access_token hint');
      t.equal((await refresh(app, s.refresh_token!)).body.error, 'invalid_grant', '…is revoked all the same');
      t.equal((await revoke(app, s.refresh_token!, 'refresh_token')).status, 200, 'again: 200');
      t.equal((await revoke(app, s.refresh_token!, 'something_else')).status, 200, 'an unknown hint is ignored');

      const s2 = await login();
      const before = await denylisted();
      t.equal((await revoke(app, s2.access_token, 'refresh_token')).status, 200, 'an access token with the refresh_token hint');
      // its jti, and its family (RFC 7009 §2.1: the family shares the token's status-list index)
      t.equal(await denylisted(), before + 2, '…is denylisted all the same, with its family');
      t.equal((await revoke(app, s2.access_token)).status, 200, 'again: 200');
      t.equal(await denylisted(), before + 2, 'once');
      t.equal((await refresh(app, s2.refresh_token!)).body.error, 'invalid_grant', 'revoking an access token ends its family');

      const s3 = await login();
      e.clock.advance(e.config.accessTokenTtl + e.config.clockLeewaySeconds + 60);
      const n = await denylisted();
      t.equal((await revoke(app, s3.access_token)).status, 200, 'an expired access token: 200');
      t.equal(await denylisted(), n, '…and nothing to denylist');
      e.clock.advance(-(e.config.accessTokenTtl + e.config.clockLeewaySeconds + 60));
      t.equal((await revoke(app, 'x'.repeat(5000))).status, 200, 'an over-long token: 200');
    });

    await t.test('client_credentials tokens: revocation and introspection', async (t) => {
      const cc = await tokenRequest(issuer, { grant_type: 'client_credentials' }, auth(machine));
      t.equal(cc.status, 200);
      const token = cc.body.access_token as string;
      const seen = await introspect(rs, token);
      t.equal(seen.active, true, 'the RS serving the audience sees it');
      t.equal(seen.client_id, machine.clientId);
      t.equal(seen.sub, machine.clientId);
      t.equal((await revoke(rs, token)).body.error, 'unauthorized_client', 'the RS may not revoke it');
      t.equal((await revoke(machine, token)).status, 200);
      t.same(await introspect(rs, token), { active: false }, 'revoked');
      t.same(await introspect(machine, token), { active: false });
    });

    await t.test('refresh tokens at introspection: active, consumed, revoked, expired, disabled user', async (t) => {
      const s = await login();
      const active = await introspect(app, s.refresh_token!);
      t.equal(active.active, true);
      t.equal(active.token_type, 'refresh_token');
      t.equal(active.client_id, app.clientId);
      t.equal(active.sub, userId);
      t.equal(active.scope, 'openid offline_access api:read');
      t.ok((active.exp as number) > Math.floor(e.clock.now() / 1000));
      t.same(await introspect(rs, s.refresh_token!), { active: false }, 'not the caller’s');
      const r = await refresh(app, s.refresh_token!);
      t.same(await introspect(app, s.refresh_token!), { active: false }, 'consumed');
      t.equal((await introspect(app, r.body.refresh_token as string)).active, true, 'its successor is active');
      e.clock.advance(15 * 86400);
      t.same(await introspect(app, r.body.refresh_token as string), { active: false }, 'idle-expired');
      e.clock.advance(-15 * 86400);
      await cli(e.rt, ['users', 'disable', 'ivy@example.com']);
      t.same(await introspect(app, r.body.refresh_token as string), { active: false }, 'disabled user');
      await cli(e.rt, ['users', 'enable', 'ivy@example.com']);
      t.same(await introspect(app, r.body.refresh_token as string), { active: false }, 'disabling revoked it for good');
    });

    await t.test("a deleted client's tokens are inactive", async (t) => {
      const doomed = await createClient(e.rt, ['--name', 'Doomed', '--grant-types', 'client_credentials', '--scopes', 'jobs', '--audiences', API]);
      const cc = await tokenRequest(issuer, { grant_type: 'client_credentials' }, auth(doomed));
      t.equal((await introspect(rs, cc.body.access_token as string)).active, true);
      // `--`: a base64url client_id may begin with '-' (reported: the CLI then takes it for an option)
      const del = await runCommand(['clients', 'delete', '--json', '--', doomed.clientId], cliContextFor(e.rt), undefined);
      t.equal(del.code, 0, del.stderr);
      await t.resolves(waitFor(async () => ((await introspect(rs, cc.body.access_token as string)).active === false ? true : undefined), 30_000));
    });

    await t.test('failed client authentication is rate-limited at /revoke and /introspect', async (t) => {
      for (const [endpoint, c] of [['revoke', app], ['introspect', rs]] as Array<[string, TestClient]>) {
        for (let i = 0; i < FAILURES; i++) {
          const bad = await postForm(`${issuer}/${endpoint}`, { token: 'x' }, { clientId: c.clientId, secret: 'wrong secret' });
          t.equal(bad.status, 401, `/${endpoint}: failure ${i + 1} → 401`);
          t.equal(bad.body.error, 'invalid_client');
          t.match(bad.headers.get('www-authenticate') ?? '', /^Basic /);
        }
        const limited = await postForm(`${issuer}/${endpoint}`, { token: 'x' }, { clientId: c.clientId, secret: 'wrong secret' });
        t.equal(limited.status, 429, `/${endpoint}: over the limit → 429`);
        t.ok(Number(limited.headers.get('retry-after')) > 0, 'Retry-After');
        const right = await postForm(`${issuer}/${endpoint}`, { token: 'x' }, auth(c));
        t.equal(right.status, 429, `/${endpoint}: even the right secret waits`);
      }
      t.equal((await postForm(`${issuer}/introspect`, { token: 'x' }, auth(machine))).status, 200, 'other clients are not affected');
      const audit = await e.rt.db.selectFrom('audit_events').select('id').where('type', '=', 'client_auth.failure').execute();
      t.ok(audit.length >= 2 * FAILURES, 'failures are audited');
    });
  });
}

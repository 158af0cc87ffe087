// RFC 6749 §4.1.2: an authorization code redeemed twice is refused, and what its first redemption
// issued (access token, refresh-token family) is revoked.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { pkce, postForm, tokenRequest } from '../helpers/flow.js';
import { Browser, authorizeWithLogin } from '../helpers/http-login.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

const userinfo = async (e: TestEnv, at: string) => (await fetch(`${e.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status;
const introspect = async (e: TestEnv, c: TestClient, token: string) => (await postForm(`${e.config.issuer}/introspect`, { token }, { clientId: c.clientId, secret: c.clientSecret })).body;
const refresh = (e: TestEnv, c: TestClient, rt: string) =>
  tokenRequest(e.config.issuer, { grant_type: 'refresh_token', refresh_token: rt }, { clientId: c.clientId, secret: c.clientSecret });

for (const backend of backends()) {
  t.test(`authorization code replay on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    await createUser(e.rt, 'cora@example.com', 'cora password 1');
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', 'https://api.example.com', '--scopes', 'openid profile offline_access api:read']);
    const other = await createClient(e.rt, ['--name', 'Other', '--redirect-uri', REDIRECT, '--first-party']);
    const rs = await createClient(e.rt, ['--name', 'RS', '--grant-types', 'client_credentials', '--scopes', 'introspect', '--resource-server', 'https://api.example.com']);

    const redeem = (c: TestClient, code: string, verifier: string) =>
      tokenRequest(e.config.issuer, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, { clientId: c.clientId, secret: c.clientSecret });

    // authorize and redeem by hand: the test keeps the code and its verifier to replay them
    const browser = new Browser(e.config.issuer);
    const firstRedemption = async (scope: string) => {
      const { verifier, challenge } = pkce();
      const url = new URL(`${e.config.issuer}/authorize`);
      const q = { response_type: 'code', client_id: app.clientId, redirect_uri: REDIRECT, scope, state: 'st', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256' };
      for (const [k, v] of Object.entries(q)) url.searchParams.set(k, v);
      const step = await authorizeWithLogin(browser, url.href, 'cora@example.com', 'cora password 1');
      const code = new URL(step.location!).searchParams.get('code')!;
      const r = await redeem(app, code, verifier);
      t.equal(r.status, 200, 'the first redemption succeeds');
      return { tokens: r.body as { access_token: string; refresh_token?: string }, code, verifier };
    };

    const { tokens, code, verifier } = await firstRedemption('openid profile offline_access api:read');
    t.ok(tokens.refresh_token);
    t.equal(await userinfo(e, tokens.access_token), 200, 'the first redemption works');
    t.equal((await introspect(e, rs, tokens.access_token)).active, true);

    // the code presented by another client: refused, and nothing is revoked
    const foreign = await redeem(other, code, verifier);
    t.equal(foreign.status, 400);
    t.equal(foreign.body.error, 'invalid_grant');
    t.equal(await userinfo(e, tokens.access_token), 200, 'another client presenting the code revokes nothing');

    // the same client, the same code, the right verifier: the replay
    const second = await redeem(app, code, verifier);
    t.equal(second.status, 400);
    t.equal(second.body.error, 'invalid_grant');
    t.notOk(second.body.access_token, 'no tokens the second time');
    t.equal(second.headers.get('cache-control'), 'no-store');

    t.equal(await userinfo(e, tokens.access_token), 401, "the first redemption's access token is revoked at userinfo");
    t.same(await introspect(e, rs, tokens.access_token), { active: false }, '…and inactive at introspection');
    t.same(await introspect(e, app, tokens.refresh_token!), { active: false }, 'its refresh token is inactive');
    const r = await refresh(e, app, tokens.refresh_token!);
    t.equal(r.status, 400);
    t.equal(r.body.error, 'invalid_grant', 'its refresh token no longer works');

    const fam = await e.rt.db.selectFrom('refresh_families').select(['revoked_at', 'revoked_reason']).executeTakeFirstOrThrow();
    t.ok(fam.revoked_at);
    t.equal(fam.revoked_reason, 'code_replay');
    const audit = await e.rt.db.selectFrom('audit_events').selectAll().where('type', '=', 'code.replayed').execute();
    t.equal(audit.length, 1, 'an audit event');
    t.equal(audit[0]!.client_id, app.clientId);

    // a refresh made before the replay is revoked too: the family carries every token it produced
    const { tokens: t2, code: code2, verifier: verifier2 } = await firstRedemption('openid offline_access');
    const rotated = await refresh(e, app, t2.refresh_token!);
    t.equal(rotated.status, 200);
    t.equal((await redeem(app, code2, verifier2)).body.error, 'invalid_grant');
    t.equal(await userinfo(e, rotated.body.access_token as string), 401, 'the rotated access token is revoked too');
    t.equal((await refresh(e, app, rotated.body.refresh_token as string)).body.error, 'invalid_grant', 'and the rotated refresh token');
  });
}

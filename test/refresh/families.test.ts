// Refresh-token families: rotation, reuse detection, concurrency, grace, expiry, scope, foreign
// clients, and what every revocation path does to access tokens (userinfo/introspection).
import t, { type Test } from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest, type TokenSet } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

async function setup(t: Test, databaseUrl: string, env: Record<string, string> = {}) {
  const e = await createTestEnv(databaseUrl, { listen: true, env });
  t.teardown(() => e.close());
  await createUser(e.rt, 'rita@example.com', 'rita password 1');
  const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', 'https://api.example.com', '--scopes', 'openid profile email offline_access api:read']);
  const other = await createClient(e.rt, ['--name', 'Other', '--redirect-uri', REDIRECT, '--first-party', '--audiences', 'https://api.example.com']);
  const rs = await createClient(e.rt, ['--name', 'Resource server', '--grant-types', 'client_credentials', '--scopes', 'introspect', '--resource-server', 'https://api.example.com']);
  return { e, app, other, rs };
}

async function login(e: TestEnv, app: TestClient, scope = 'openid profile offline_access api:read'): Promise<TokenSet> {
  const { tokens } = await loginAndRedeem({ issuer: e.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'rita@example.com', password: 'rita password 1', scope });
  return tokens;
}

const refresh = (e: TestEnv, c: TestClient, rt: string, extra: Record<string, string> = {}) =>
  tokenRequest(e.config.issuer, { grant_type: 'refresh_token', refresh_token: rt, ...extra }, { clientId: c.clientId, secret: c.clientSecret });

const userinfo = async (e: TestEnv, at: string) => (await fetch(`${e.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status;
const introspect = async (e: TestEnv, rs: TestClient, token: string) => (await postForm(`${e.config.issuer}/introspect`, { token }, { clientId: rs.clientId, secret: rs.clientSecret })).body;

for (const backend of backends()) {
  t.test(`refresh families on ${backend.name}`, async (t) => {
    const { e, app, other, rs } = await setup(t, await backend.create());

    await t.test('rotation, and reuse kills the family and its live access tokens', async (t) => {
      const first = await login(e, app);
      t.ok(first.refresh_token, 'offline_access + refresh_token grant → a refresh token');
      const r1 = await refresh(e, app, first.refresh_token!);
      t.equal(r1.status, 200);
      t.equal(r1.headers.get('cache-control'), 'no-store');
      t.not(r1.body.refresh_token, first.refresh_token, 'rotated');
      t.ok(r1.body.id_token, 'a new ID token for OIDC');
      t.equal(await userinfo(e, r1.body.access_token as string), 200);
      t.equal((await introspect(e, rs, r1.body.access_token as string)).active, true);
      t.equal((await introspect(e, rs, r1.body.refresh_token as string)).active, false, 'the RS may not see the client’s refresh token');
      t.equal((await postForm(`${e.config.issuer}/introspect`, { token: r1.body.refresh_token as string }, { clientId: app.clientId, secret: app.clientSecret })).body.active, true);

      // the consumed first token presented again: reuse → the family dies
      const replay = await refresh(e, app, first.refresh_token!);
      t.equal(replay.status, 400);
      t.equal(replay.body.error, 'invalid_grant');
      t.equal(await userinfo(e, r1.body.access_token as string), 401, 'the live access token is denylisted at once');
      t.equal((await introspect(e, rs, r1.body.access_token as string)).active, false);
      t.equal((await refresh(e, app, r1.body.refresh_token as string)).status, 400, 'the successor is dead too');
      const audit = await e.rt.db.selectFrom('audit_events').selectAll().where('type', '=', 'refresh.reuse_detected').execute();
      t.equal(audit.length, 1, 'an audit event');
    });

    await t.test('revoking a family refuses every access token it ever issued, with one denylist row', async (t) => {
      const first = await login(e, app);
      const ats = [first.access_token];
      let rt = first.refresh_token!;
      // more rotations than the per-family list of jtis this replaced could hold
      for (let i = 0; i < 210; i++) {
        const r = await refresh(e, app, rt);
        t.equal(r.status, 200);
        ats.push(r.body.access_token as string);
        rt = r.body.refresh_token as string;
      }
      const fid = (JSON.parse(Buffer.from(first.access_token.split('.')[1]!, 'base64url').toString()) as { fid: string }).fid;
      const lastExp = (JSON.parse(Buffer.from(ats.at(-1)!.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
      const before = (await e.rt.db.selectFrom('denylist').select('jti').execute()).length;
      t.equal((await postForm(`${e.config.issuer}/revoke`, { token: rt }, { clientId: app.clientId, secret: app.clientSecret })).status, 200);
      for (const at of [ats[0]!, ats[1]!, ats[100]!, ats.at(-1)!]) {
        t.equal(await userinfo(e, at), 401, 'refused at /userinfo');
        t.equal((await introspect(e, rs, at)).active, false, 'inactive at /introspect');
      }
      const rows = await e.rt.db.selectFrom('denylist').select(['jti', 'expires_at']).execute();
      t.equal(rows.length, before + 1, 'one row for the whole family');
      const row = rows.find((r) => r.jti === `family:${fid}`);
      t.ok(row, 'the family key is denylisted');
      t.equal(row && row.expires_at.getTime(), lastExp * 1000, 'until its last access token expires');
      const fam = await e.rt.db.selectFrom('refresh_families').select('access_expires_at').where('id', '=', fid).executeTakeFirstOrThrow();
      t.equal(fam.access_expires_at?.getTime(), lastExp * 1000, 'the family records the latest access-token expiry');
    });

    await t.test('ten concurrent refreshes with one token (grace 0): one wins, the family is revoked', async (t) => {
      const s = await login(e, app);
      const results = await Promise.all(Array.from({ length: 10 }, () => refresh(e, app, s.refresh_token!)));
      const ok = results.filter((r) => r.status === 200);
      t.equal(ok.length, 1, 'exactly one succeeds');
      t.ok(results.filter((r) => r.status !== 200).every((r) => r.body.error === 'invalid_grant'));
      // this login's family, by the fid claim of its access token (created_at may tie under the test clock)
      const fid = (JSON.parse(Buffer.from(s.access_token.split('.')[1]!, 'base64url').toString()) as { fid: string }).fid;
      const fam = await e.rt.db.selectFrom('refresh_families').select(['revoked_at', 'revoked_reason']).where('id', '=', fid).executeTakeFirstOrThrow();
      t.ok(fam.revoked_at, 'family revoked');
      t.equal(fam.revoked_reason, 'refresh_reuse');
      t.equal((await refresh(e, app, ok[0]!.body.refresh_token as string)).status, 400);
      const gen = await e.rt.db.selectFrom('refresh_families').select('generation').where('id', '=', fid).executeTakeFirstOrThrow();
      t.equal(gen.generation, 1, 'one rotation: the chain never forked');
    });

    await t.test('scope narrowing and widening; a foreign client', async (t) => {
      const s = await login(e, app);
      const narrowed = await refresh(e, app, s.refresh_token!, { scope: 'openid api:read' });
      t.equal(narrowed.status, 200);
      t.equal(narrowed.body.scope, 'openid api:read');
      const widened = await refresh(e, app, narrowed.body.refresh_token as string, { scope: 'openid email' });
      t.equal(widened.status, 400);
      t.equal(widened.body.error, 'invalid_scope');
      const foreign = await refresh(e, other, narrowed.body.refresh_token as string);
      t.equal(foreign.status, 400);
      t.equal(foreign.body.error, 'invalid_grant');
      // neither failure consumed the token
      t.equal((await refresh(e, app, narrowed.body.refresh_token as string)).status, 200, 'failed requests changed no state');
    });

    await t.test('idle and absolute expiry (injected clock)', async (t) => {
      const s = await login(e, app);
      e.clock.advance(13 * 86400);
      const r = await refresh(e, app, s.refresh_token!);
      t.equal(r.status, 200, 'within the idle window');
      e.clock.advance(14 * 86400 + 60);
      const idle = await refresh(e, app, r.body.refresh_token as string);
      t.equal(idle.body.error, 'invalid_grant', 'idle expiry');

      const s2 = await login(e, app);
      let rt = s2.refresh_token!;
      for (let i = 0; i < 3; i++) {
        e.clock.advance(10 * 86400);
        const step = await refresh(e, app, rt);
        if (i < 2) {
          t.equal(step.status, 200, `day ${(i + 1) * 10}`);
          rt = step.body.refresh_token as string;
        } else {
          t.equal(step.body.error, 'invalid_grant', 'absolute expiry after 30 days');
        }
      }
    });

    await t.test('/revoke: refresh token, access token, bad input, another client', async (t) => {
      const s = await login(e, app);
      const rev = (token: string, c: TestClient, hint?: string) => postForm(`${e.config.issuer}/revoke`, { token, ...(hint ? { token_type_hint: hint } : {}) }, { clientId: c.clientId, secret: c.clientSecret });
      const foreign = await rev(s.refresh_token!, other);
      t.equal(foreign.status, 400, 'another client’s token is refused');
      t.equal(foreign.body.error, 'unauthorized_client');
      t.equal((await refresh(e, app, s.refresh_token!)).status, 200, '…and not revoked');
      const s2 = await login(e, app);
      t.equal((await rev(s2.access_token, app, 'access_token')).status, 200);
      t.equal(await userinfo(e, s2.access_token), 401, 'access token denylisted');
      t.equal((await introspect(e, rs, s2.access_token)).active, false);
      t.equal((await rev(s2.refresh_token!, app, 'refresh_token')).status, 200);
      t.equal((await refresh(e, app, s2.refresh_token!)).body.error, 'invalid_grant', 'refresh token revoked');
      t.equal((await rev('garbage', app)).status, 200, 'unknown token → 200');
      t.equal((await rev('a.b.c', app)).status, 200, 'malformed JWT → 200');
      const noToken = await postForm(`${e.config.issuer}/revoke`, {}, { clientId: app.clientId, secret: app.clientSecret });
      t.equal(noToken.status, 400);
      t.equal(noToken.body.error, 'invalid_request');
      const badAuth = await postForm(`${e.config.issuer}/revoke`, { token: 'x' }, { clientId: app.clientId, secret: 'wrong' });
      t.equal(badAuth.status, 401);
      t.equal(badAuth.body.error, 'invalid_client');
      t.ok(badAuth.headers.get('www-authenticate'));
    });

    await t.test('introspection of every token state', async (t) => {
      const s = await login(e, app);
      const active = await introspect(e, rs, s.access_token);
      t.equal(active.active, true);
      t.equal(active.client_id, app.clientId);
      t.equal(active.token_type, 'Bearer');
      t.equal(active.iss, e.config.issuer);
      t.ok(active.exp && active.iat && active.sub && active.aud && active.scope);
      t.same(await introspect(e, rs, 'nonsense'), { active: false });
      t.same(await introspect(e, rs, s.access_token.slice(0, -4) + 'AAAA'), { active: false }, 'bad signature');
      e.clock.advance(16 * 60);
      t.same(await introspect(e, rs, s.access_token), { active: false }, 'expired');
      e.clock.advance(-16 * 60);
      const stranger = await createClient(e.rt, ['--name', 'Stranger', '--grant-types', 'client_credentials', '--scopes', 'x', '--audiences', 'https://other.example.com']);
      t.same(await introspect(e, stranger, s.access_token), { active: false }, 'a caller who may not see it');
      const pub = await createClient(e.rt, ['--name', 'Public', '--public', '--redirect-uri', REDIRECT]);
      const r = await postForm(`${e.config.issuer}/introspect`, { token: s.access_token }, { clientId: pub.clientId });
      t.equal(r.status, 401, 'public clients may not introspect');
    });
  });
}

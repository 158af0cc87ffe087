// The reuse grace window (REFRESH_REUSE_GRACE_SECONDS): concurrent duplicates of one refresh token
// fail with invalid_grant but leave the family alive; a replay after the window revokes it.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const GRACE = 10;

const refresh = (e: TestEnv, c: TestClient, rt: string) =>
  tokenRequest(e.config.issuer, { grant_type: 'refresh_token', refresh_token: rt }, { clientId: c.clientId, secret: c.clientSecret });
const userinfo = async (e: TestEnv, at: string) => (await fetch(`${e.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status;

for (const backend of backends()) {
  t.test(`reuse grace window on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true, env: { REFRESH_REUSE_GRACE_SECONDS: String(GRACE) } });
    t.teardown(() => e.close());
    t.equal(e.config.refreshReuseGraceSeconds, GRACE);
    await createUser(e.rt, 'gus@example.com', 'gus password 1');
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid profile offline_access']);
    const { tokens } = await loginAndRedeem({ issuer: e.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'gus@example.com', password: 'gus password 1', scope: 'openid profile offline_access' });
    const original = tokens.refresh_token!;
    t.ok(original);

    // ten at once: the database serializes them; one rotates, nine are duplicates within the grace
    const results = await Promise.all(Array.from({ length: 10 }, () => refresh(e, app, original)));
    const ok = results.filter((r) => r.status === 200);
    t.equal(ok.length, 1, 'exactly one succeeds');
    const failed = results.filter((r) => r.status !== 200);
    t.equal(failed.length, 9);
    t.ok(failed.every((r) => r.status === 400 && r.body.error === 'invalid_grant'), 'the others are invalid_grant');

    const fam = await e.rt.db.selectFrom('refresh_families').select(['id', 'revoked_at']).executeTakeFirstOrThrow();
    t.equal(fam.revoked_at, null, 'the family survives');
    t.equal(await e.rt.db.selectFrom('denylist').select('jti').execute().then((r) => r.length), 0, 'nothing was denylisted');
    t.equal((await e.rt.db.selectFrom('audit_events').select('id').where('type', '=', 'refresh.reuse_detected').execute()).length, 0, 'no reuse event');
    const winner = ok[0]!.body;
    t.equal(await userinfo(e, winner.access_token as string), 200, "the winner's access token works");
    t.equal(await userinfo(e, tokens.access_token), 200, 'the first access token still works');

    // the winner's refresh token keeps the chain going
    const next = await refresh(e, app, winner.refresh_token as string);
    t.equal(next.status, 200, "the winner's new refresh token works");
    const gen = await e.rt.db.selectFrom('refresh_families').select('generation').where('id', '=', fam.id).executeTakeFirstOrThrow();
    t.equal(gen.generation, 2, 'two rotations, no fork');

    // still within the grace: another duplicate changes nothing
    e.clock.advance(GRACE - 2);
    t.equal((await refresh(e, app, original)).body.error, 'invalid_grant');
    t.equal((await e.rt.db.selectFrom('refresh_families').select('revoked_at').where('id', '=', fam.id).executeTakeFirstOrThrow()).revoked_at, null, 'within the grace: still alive');

    // past the grace: a replay of the consumed token revokes the family
    e.clock.advance(GRACE);
    const late = await refresh(e, app, original);
    t.equal(late.status, 400);
    t.equal(late.body.error, 'invalid_grant');
    const after = await e.rt.db.selectFrom('refresh_families').select(['revoked_at', 'revoked_reason']).where('id', '=', fam.id).executeTakeFirstOrThrow();
    t.ok(after.revoked_at, 'the family is revoked');
    t.equal(after.revoked_reason, 'refresh_reuse');
    t.equal((await refresh(e, app, next.body.refresh_token as string)).body.error, 'invalid_grant', 'the live end of the chain is dead');
    t.equal(await userinfo(e, next.body.access_token as string), 401, 'its access token is denylisted');
    t.equal(await userinfo(e, winner.access_token as string), 401);
    t.same((await postForm(`${e.config.issuer}/introspect`, { token: next.body.access_token as string }, { clientId: app.clientId, secret: app.clientSecret })).body, { active: false }, 'introspection: inactive');
    t.equal((await e.rt.db.selectFrom('audit_events').select('id').where('type', '=', 'refresh.reuse_detected').execute()).length, 1, 'one reuse event');
  });
}

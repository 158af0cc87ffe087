// Two server instances on one Postgres database (same issuer, same KEK): a revocation made through
// one is seen by the other's /userinfo and /introspect (its denylist view hears of it through
// LISTEN/NOTIFY; we poll with a generous deadline and never time it), and one refresh chain may
// hop between them.
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { dropCreatedDatabases, postgres, postgresOnly } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest, type TokenSet } from '../helpers/flow.js';
import { waitFor } from '../helpers/process.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const API = 'https://api.example.com';
const DEADLINE = 30_000;

t.test('two instances on one Postgres database', { skip: postgresOnly }, async (t) => {
  const databaseUrl = await postgres.create();
  const a = await createTestEnv(databaseUrl, { listen: true });
  t.teardown(() => a.close());
  const issuer = a.config.issuer;
  // B serves the same issuer (as replicas behind one name do) from its own port
  const b = await createTestEnv(databaseUrl, { listen: true, env: { ISSUER: issuer } });
  t.teardown(() => b.close());
  const urlA = issuer;
  const urlB = `http://127.0.0.1:${(b.app.server.address() as AddressInfo).port}`;
  t.not(urlA, urlB);
  t.equal(b.config.issuer, issuer);

  await createUser(a.rt, 'rae@example.com', 'rae password 1');
  const app = await createClient(a.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', API, '--scopes', 'openid profile offline_access api:read']);
  const rs = await createClient(a.rt, ['--name', 'RS', '--grant-types', 'client_credentials', '--scopes', 'introspect', '--resource-server', API]);

  const login = async (): Promise<TokenSet> =>
    (await loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'rae@example.com', password: 'rae password 1', scope: 'openid profile offline_access api:read' })).tokens;
  const refresh = (url: string, rt: string, c: TestClient = app) => tokenRequest(url, { grant_type: 'refresh_token', refresh_token: rt }, { clientId: c.clientId, secret: c.clientSecret });
  const userinfo = async (url: string, at: string) => (await fetch(`${url}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status;
  const active = async (url: string, token: string) => (await postForm(`${url}/introspect`, { token }, { clientId: rs.clientId, secret: rs.clientSecret })).body.active;
  /** Instance `url` eventually refuses `at` at /userinfo and calls it inactive at /introspect. */
  const seenRevokedBy = async (url: string, at: string) => {
    await waitFor(async () => ((await userinfo(url, at)) === 401 ? true : undefined), DEADLINE);
    await waitFor(async () => ((await active(url, at)) === false ? true : undefined), DEADLINE);
  };

  await t.test('an access token revoked through A is refused by B', async (t) => {
    const s = await login();
    t.equal(await userinfo(urlB, s.access_token), 200, 'B accepts it first');
    t.equal(await active(urlB, s.access_token), true);
    const rev = await postForm(`${urlA}/revoke`, { token: s.access_token, token_type_hint: 'access_token' }, { clientId: app.clientId, secret: app.clientSecret });
    t.equal(rev.status, 200);
    t.equal(await userinfo(urlA, s.access_token), 401, 'A refuses it at once');
    await t.resolves(seenRevokedBy(urlB, s.access_token), 'B refuses it within the deadline');
    // RFC 7009 §2.1: the family ends with its access token (its status-list index is the family's)
    t.equal((await refresh(urlB, s.refresh_token!)).body.error, 'invalid_grant', 'revoking the access token ended its family');
  });

  await t.test('a family revoked through reuse at A is dead at B', async (t) => {
    const s = await login();
    const r1 = await refresh(urlA, s.refresh_token!);
    t.equal(r1.status, 200);
    const at = r1.body.access_token as string;
    t.equal(await userinfo(urlB, at), 200);
    t.equal(await active(urlB, at), true);
    const replay = await refresh(urlA, s.refresh_token!);
    t.equal(replay.body.error, 'invalid_grant', 'reuse detected at A');
    await t.resolves(seenRevokedBy(urlB, at), "B refuses the family's live access token");
    t.equal((await refresh(urlB, r1.body.refresh_token as string)).body.error, 'invalid_grant', "B refuses the family's refresh token");
  });

  await t.test('one refresh chain alternating between A and B', async (t) => {
    const s = await login();
    let rt = s.refresh_token!;
    const seen = new Set<string>([rt]);
    for (let i = 0; i < 6; i++) {
      const url = i % 2 === 0 ? urlA : urlB;
      const r = await refresh(url, rt);
      t.equal(r.status, 200, `step ${i + 1} at ${i % 2 === 0 ? 'A' : 'B'}`);
      rt = r.body.refresh_token as string;
      t.notOk(seen.has(rt), 'a new token each time');
      seen.add(rt);
      t.equal(await userinfo(i % 2 === 0 ? urlB : urlA, r.body.access_token as string), 200, 'the other instance accepts its access token');
    }
    // a consumed link replayed at B revokes the chain for A too
    const [, second] = [...seen];
    t.equal((await refresh(urlB, second!)).body.error, 'invalid_grant');
    t.equal((await refresh(urlA, rt)).body.error, 'invalid_grant', 'the live end is dead at A');
  });

  await t.test('the same refresh token at A and B at once: exactly one succeeds, no fork', async (t) => {
    const s = await login();
    const results = await Promise.all([urlA, urlB, urlA, urlB, urlA, urlB].map((u) => refresh(u, s.refresh_token!)));
    const ok = results.filter((r) => r.status === 200);
    t.equal(ok.length, 1, 'exactly one succeeds');
    t.ok(results.filter((r) => r.status !== 200).every((r) => r.body.error === 'invalid_grant'));
    const fid = (JSON.parse(Buffer.from(s.access_token.split('.')[1]!, 'base64url').toString()) as { fid: string }).fid;
    const fam = await a.rt.db.selectFrom('refresh_families').select('generation').where('id', '=', fid).executeTakeFirstOrThrow();
    t.equal(fam.generation, 1, 'one rotation: no fork');
    // grace 0: the duplicates revoked the family, on both instances
    t.equal((await refresh(urlB, ok[0]!.body.refresh_token as string)).body.error, 'invalid_grant');
    await t.resolves(seenRevokedBy(urlA, ok[0]!.body.access_token as string));
    await t.resolves(seenRevokedBy(urlB, ok[0]!.body.access_token as string));
  });
});

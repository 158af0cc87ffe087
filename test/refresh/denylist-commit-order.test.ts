// Issue 17, items 1 and 4. The denylist view must not lose a committed row whatever order the
// revoking transactions commit in (sequence order is not commit order), and a revocation inside
// the clock leeway (a token past `exp` but still accepted) must take effect and outlive the leeway.
import t from 'tap';
import pg from 'pg';
import { backends, dropCreatedDatabases, hasPostgres, postgresOnly } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm } from '../helpers/flow.js';
import { waitFor } from '../helpers/process.js';
import { DenylistView } from '../../src/tokens/denylist-view.js';
import { denylist } from '../../src/store/refresh-families.js';
import { DENYLIST_RETENTION_SECONDS } from '../../src/core/channels.js';
import { pruneExpired } from '../../src/store/pruning.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

for (const backend of backends()) {
  t.test(`denylist commit order and leeway on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const db = e.rt.db;
    const nowSec = () => Math.floor(e.clock.now() / 1000);

    await t.test('a row written with an old sequence value after newer ones were read is still loaded', async (t) => {
      // what a long transaction leaves behind: it took its sequence values before 1,500 others
      // were written and read, and commits last
      const view = new DenylistView(db, e.clock, { pollMs: 3600_000 });
      await view.start(e.rt.dbh);
      t.teardown(() => view.stop());
      const first = await db.insertInto('denylist').values({ jti: 'early-seq', expires_at: new Date(e.clock.now() + 600_000) }).returning('seq').executeTakeFirstOrThrow();
      await db.deleteFrom('denylist').where('jti', '=', 'early-seq').execute();
      await denylist(db, Array.from({ length: 1500 }, (_, i) => ({ jti: `filler-${i}`, exp: nowSec() + 600 })), new Date(e.clock.now()));
      await view.sync();
      t.equal(await view.isDenied('filler-1499'), true);
      await db.transaction().execute(async (trx) => {
        await trx.insertInto('denylist').values({ jti: 'late', expires_at: new Date(e.clock.now() + 600_000), seq: first.seq }).execute();
      });
      await view.sync();
      t.equal(await view.isDenied('late'), true, 'the late commit is in the view');
    });

    await t.test('a token revoked inside the clock leeway is refused, and its entry outlives the leeway', async (t) => {
      await createUser(e.rt, 'lee@example.com', 'lee password 1');
      const app = await createClient(e.rt, ['--name', 'Leeway', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid']);
      const { tokens } = await loginAndRedeem({ issuer: e.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'lee@example.com', password: 'lee password 1', scope: 'openid' });
      const userinfo = () => fetch(`${e.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      // past exp, inside the 30 s leeway: still accepted
      e.clock.advance(e.config.accessTokenTtl + 10);
      t.teardown(() => e.clock.advance(-(e.config.accessTokenTtl + 10)));
      t.equal((await userinfo()).status, 200, 'accepted inside the leeway');
      const r = await postForm(`${e.config.issuer}/revoke`, { token: tokens.access_token }, { clientId: app.clientId, secret: app.clientSecret });
      t.equal(r.status, 200);
      await t.resolves(waitFor(async () => ((await userinfo()).status === 401 ? true : undefined), 10_000), 'refused once revoked');
      const { jti, fid } = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as { jti: string; fid: string };
      const rows = await db.selectFrom('denylist').select(['jti', 'expires_at']).where('jti', '=', jti).execute();
      t.equal(rows.length, 1, 'an entry for the revoked token');
      t.ok(await db.selectFrom('denylist').select('jti').where('jti', '=', `family:${fid}`).executeTakeFirst(), 'and one for its family (RFC 7009 §2.1)');
      const pruneAt = (seconds: number) => pruneExpired(db, new Date(rows[0]!.expires_at.getTime() + seconds * 1000));
      await pruneAt(e.config.clockLeewaySeconds);
      t.ok(await db.selectFrom('denylist').select('jti').where('jti', '=', rows[0]!.jti).executeTakeFirst(), 'kept while the token is still inside the leeway');
      await pruneAt(DENYLIST_RETENTION_SECONDS + 1);
      t.notOk(await db.selectFrom('denylist').select('jti').where('jti', '=', rows[0]!.jti).executeTakeFirst(), 'pruned once no leeway can accept it');
    });
  });
}

t.test('a large revocation that took its sequence values first and committed last is refused (Postgres, two connections)', { skip: postgresOnly }, async (t) => {
  if (!hasPostgres) return;
  const { postgres } = await import('../helpers/backends.js');
  const url = await postgres.create();
  const e = await createTestEnv(url, { listen: true });
  t.teardown(() => e.close());
  const issuer = e.config.issuer;
  await createUser(e.rt, 'ord@example.com', 'ord password 1');
  const app = await createClient(e.rt, ['--name', 'Order', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid offline_access']);
  const login = async () =>
    (await loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'ord@example.com', password: 'ord password 1', scope: 'openid offline_access' })).tokens;
  const victim = await login();
  const small = await login();
  const introspect = async (token: string) => (await postForm(`${issuer}/introspect`, { token }, { clientId: app.clientId, secret: app.clientSecret })).body.active;
  t.equal(await introspect(victim.access_token), true);

  // the long transaction: it revokes the victim's family first, then 3,000 more entries
  const long = new pg.Client({ connectionString: url });
  await long.connect();
  t.teardown(() => long.end());
  const fid = (JSON.parse(Buffer.from(victim.access_token.split('.')[1]!, 'base64url').toString()) as { fid: string }).fid;
  const exp = new Date(Date.now() + 3600_000);
  await long.query('BEGIN');
  await long.query('INSERT INTO denylist (jti, expires_at) VALUES ($1, $2)', [`family:${fid}`, exp]);
  await long.query("INSERT INTO denylist (jti, expires_at) SELECT 'bulk-' || g, $1 FROM generate_series(1, 3000) g", [exp]);
  // meanwhile a small revocation commits, and every replica's view reads past it
  t.equal((await postForm(`${issuer}/revoke`, { token: small.refresh_token! }, { clientId: app.clientId, secret: app.clientSecret })).status, 200);
  await t.resolves(waitFor(async () => ((await introspect(small.access_token)) === false ? true : undefined), 10_000), 'the small revocation is seen');
  await long.query("SELECT pg_notify('latchkey_denylist', '')");
  await long.query('COMMIT');
  await t.resolves(waitFor(async () => ((await introspect(victim.access_token)) === false ? true : undefined), 10_000), 'the large revocation is seen too');
  const ui = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${victim.access_token}` } });
  t.equal(ui.status, 401, '/userinfo refuses it');
  t.equal(await introspect(small.access_token), false, 'and the small one stays refused');
});

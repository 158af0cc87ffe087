// Back-Channel Logout delivery: an RP that answers 500 three times and then 200 gets its notice
// once it recovers, with the same jti and a fresh iat each time; a redirect is not followed; after
// BACKCHANNEL_RETRY_HOURS the notice is marked failed with an audit event and listed by
// `logout-notices list --failed` and the admin API; an RP that never answers does not hold up
// notices to another. The test clock is frozen: retries fall due when the test moves it.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { cli, createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, tokenRequest } from '../helpers/flow.js';
import { Browser } from '../helpers/http-login.js';
import { waitFor } from '../helpers/process.js';
import { LogoutRp } from '../helpers/logout-rp.js';
import { LOGOUT_NOTICES_CHANNEL } from '../../src/store/logout-outbox.js';
import { backoffMs } from '../../src/backchannel/delivery.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

t.test('backoff grows exponentially, with jitter', async (t) => {
  t.equal(backoffMs(1, () => 0), 500);
  t.equal(backoffMs(1, () => 1), 1000);
  t.equal(backoffMs(4, () => 1), 8000);
  t.equal(backoffMs(40, () => 1), 3_600_000, 'capped at an hour');
  const spread = new Set(Array.from({ length: 20 }, () => backoffMs(5)));
  t.ok(spread.size > 1, 'jittered');
});

for (const backend of backends()) {
  t.test(`delivery retries on ${backend.name}`, async (t) => {
    const e: TestEnv = await createTestEnv(await backend.create(), { listen: true, env: { BACKCHANNEL_RETRY_HOURS: '1' } });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const rp = await LogoutRp.start(issuer, { now: () => e.clock.now() });
    t.teardown(() => rp.close());
    // an endpoint that redirects to the RP: the redirect must not be followed
    const redirector = http.createServer((_req, res) => res.writeHead(307, { location: rp.uri('flaky') }).end());
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise<void>((r) => redirector.close(() => r())));
    const redirectorUri = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/bcl`;

    const mk = async (label: string, uri = rp.uri(label)) => {
      const c = await createClient(e.rt, ['--name', label, '--redirect-uri', REDIRECT, '--first-party', '--backchannel-logout-uri', uri, '--scopes', 'openid offline_access']);
      rp.register(label, c.clientId, 'RS256');
      return c;
    };
    const flaky = await mk('flaky');
    const down = await mk('down');
    const slow = await mk('slow');
    const fine = await mk('fine');
    const moved = await mk('moved', redirectorUri);
    const admin = await createClient(e.rt, ['--name', 'Admin', '--admin']);
    // a fresh admin token each time: the test moves the clock by hours
    const adminToken = async () =>
      (await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin', resource: `${issuer}/admin` }, { clientId: admin.clientId, secret: admin.clientSecret })).body.access_token as string;

    let n = 0;
    /** A user logged in to `clients`, then signed out everywhere by the admin API. */
    const signOutEverywhere = async (clients: TestClient[]) => {
      const email = `r${++n}@example.com`;
      const id = await createUser(e.rt, email, 'user password 1');
      const browser = new Browser(issuer);
      for (const c of clients) await loginAndRedeem({ issuer, clientId: c.clientId, secret: c.clientSecret, redirectUri: REDIRECT, email, password: 'user password 1', scope: 'openid', browser });
      const r = await fetch(`${issuer}/admin/users/${id}/logout-everywhere`, { method: 'POST', headers: { authorization: `Bearer ${await adminToken()}` } });
      t.equal(r.status, 200);
      return id;
    };
    const notice = (clientId: string) => e.rt.db.selectFrom('logout_notices').selectAll().where('client_id', '=', clientId).executeTakeFirstOrThrow();
    /** Move the frozen clock past any backoff and wake the delivery loop. */
    const later = async (seconds: number) => {
      e.clock.advance(seconds);
      await e.rt.dbh.notify(LOGOUT_NOTICES_CHANNEL, '');
    };

    await t.test('500 three times, then 200: delivered once the RP recovers, same jti, fresh iat', async (t) => {
      rp.setPolicy('flaky', (i) => (i < 3 ? 500 : 200));
      await signOutEverywhere([flaky]);
      for (let attempt = 1; attempt <= 3; attempt++) {
        await waitFor(async () => (rp.attempts.filter((x) => x.label === 'flaky').length >= attempt ? true : undefined), 30000, 20);
        const row = await waitFor(async () => {
          const r = await notice(flaky.clientId);
          return r.claim === null && r.attempts === attempt ? r : undefined;
        }, 30000, 20);
        t.equal(row.last_error, 'HTTP 500', `attempt ${attempt} failed with the RP's status`);
        t.equal(row.delivered_at, null);
        t.ok(row.next_attempt_at.getTime() > e.clock.now(), 'the retry waits (backoff)');
        await later(3600 / 8);
      }
      await waitFor(async () => ((await notice(flaky.clientId)).delivered_at ? true : undefined), 30000, 20);
      const tries = rp.attempts.filter((x) => x.label === 'flaky');
      t.equal(tries.length, 4);
      t.same(tries.map((x) => x.status), [500, 500, 500, 200]);
      t.equal(new Set(tries.map((x) => x.claims.jti)).size, 1, 'the same jti every time');
      t.equal(new Set(tries.map((x) => x.claims.iat)).size, 4, 'signed anew at each attempt');
      t.equal(rp.acceptedFor('flaky').length, 1);
      t.equal((await notice(flaky.clientId)).attempts, 4);
    });

    await t.test('never answering 2xx: retried until BACKCHANNEL_RETRY_HOURS, then failed and audited', async (t) => {
      rp.setPolicy('down', () => 503);
      const userId = await signOutEverywhere([down]);
      let attempts = 0;
      for (let i = 0; i < 40; i++) {
        const row = await waitFor(async () => {
          const r = await notice(down.clientId);
          return r.claim === null && r.attempts > attempts ? r : undefined;
        }, 30000, 20);
        attempts = row.attempts;
        if (row.failed_at) break;
        await later(900);
      }
      const row = await notice(down.clientId);
      t.ok(row.failed_at, 'marked failed');
      t.ok(attempts >= 2, `retried (${attempts} attempts)`);
      t.ok(row.failed_at!.getTime() - row.created_at.getTime() >= 3600_000, 'not before the retry window ended');
      const audit = await e.rt.db.selectFrom('audit_events').selectAll().where('type', '=', 'backchannel_logout.failed').where('client_id', '=', down.clientId).execute();
      t.equal(audit.length, 1, 'one audit event');
      t.equal(audit[0]!.user_id, userId);
      t.equal((audit[0]!.details as Record<string, unknown>).last_error, 'HTTP 503');
      const listed = (await cli(e.rt, ['logout-notices', 'list', '--failed'])) as unknown as Record<string, unknown>[];
      t.same(listed.map((x) => x.client_id), [down.clientId], 'logout-notices list --failed');
      t.equal(listed[0]!.status, 'failed');
      const api = await fetch(`${issuer}/admin/logout-notices?status=failed`, { headers: { authorization: `Bearer ${await adminToken()}` } });
      t.equal(api.status, 200);
      t.same(((await api.json()) as { notices: { client_id: string }[] }).notices.map((x) => x.client_id), [down.clientId]);
      const bad = await fetch(`${issuer}/admin/logout-notices?status=lost`, { headers: { authorization: `Bearer ${await adminToken()}` } });
      t.equal(bad.status, 400, 'an unknown status is a 400');
      t.equal(((await bad.json()) as { error: string }).error, 'invalid_request');
    });

    await t.test('a redirect is a failure and is not followed', async (t) => {
      const before = rp.attempts.filter((x) => x.label === 'flaky').length;
      await signOutEverywhere([moved]);
      const row = await waitFor(async () => {
        const r = await notice(moved.clientId);
        return r.claim === null && r.attempts >= 1 ? r : undefined;
      }, 30000, 20);
      t.equal(row.last_error, 'HTTP 307');
      t.equal(row.delivered_at, null);
      t.equal(rp.attempts.filter((x) => x.label === 'flaky').length, before, 'the redirect target never got the token');
    });

    await t.test('an RP that never answers does not delay another', async (t) => {
      rp.setPolicy('slow', () => 'hang');
      // several notices to the slow RP (more than a client's share of the slots), then one to a good one
      for (let i = 0; i < 3; i++) await signOutEverywhere([slow]);
      await waitFor(async () => (rp.held >= 2 ? true : undefined), 30000, 20);
      await signOutEverywhere([fine]);
      await waitFor(async () => ((await notice(fine.clientId)).delivered_at ? true : undefined), 30000, 20);
      const slowRows = await e.rt.db.selectFrom('logout_notices').selectAll().where('client_id', '=', slow.clientId).execute();
      t.equal(slowRows.filter((r) => r.delivered_at).length, 0, 'delivered while none of the slow RP’s notices is');
      rp.setPolicy('slow', () => 200);
      rp.releaseHeld();
      // the held attempts timed out or were answered; the rest follow
      for (let i = 0; i < 20; i++) {
        const rows = await e.rt.db.selectFrom('logout_notices').select(['delivered_at']).where('client_id', '=', slow.clientId).execute();
        if (rows.every((r) => r.delivered_at)) break;
        await later(60);
        await new Promise((r) => setTimeout(r, 300));
      }
      const rows = await e.rt.db.selectFrom('logout_notices').select(['delivered_at']).where('client_id', '=', slow.clientId).execute();
      t.equal(rows.filter((r) => r.delivered_at).length, 3, 'the slow RP gets all three once it answers');
    });

    await t.test('delivered notices are pruned after an hour', async (t) => {
      const { pruneExpired } = await import('../../src/store/pruning.js');
      const before = await e.rt.db.selectFrom('logout_notices').select('id').where('delivered_at', 'is not', null).execute();
      t.ok(before.length > 0);
      await pruneExpired(e.rt.db, new Date(e.clock.now() + 2 * 3600_000));
      const after = await e.rt.db.selectFrom('logout_notices').select('id').where('delivered_at', 'is not', null).execute();
      t.equal(after.length, 0, 'delivered ones pruned');
      t.equal((await e.rt.db.selectFrom('logout_notices').select('id').where('failed_at', 'is not', null).execute()).length, 1, 'the failed one is kept longer');
    });

    t.same(rp.problems, [], 'every token the RP got was valid');
  });
}

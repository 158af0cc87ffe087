// OIDC Back-Channel Logout 1.0: every event that ends a session here sends a logout token to the
// relying parties concerned, validated by a test RP exactly as §2.6 says — RP-initiated logout,
// an admin's sign-out-everywhere and session revoke, a user disabled, given a new password or
// deleted, refresh-token reuse — with one notice per (client, session) or (client, user); a
// revocation that rolls back sends nothing. Registration (create, update, list, admin API) and
// discovery too.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { cli, createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, tokenRequest, type TokenSet } from '../helpers/flow.js';
import { Browser } from '../helpers/http-login.js';
import { waitFor } from '../helpers/process.js';
import { LogoutRp, type ReceivedToken } from '../helpers/logout-rp.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { queueUserLogout } from '../../src/store/logout-outbox.js';
import { revokeFamiliesWhere } from '../../src/store/refresh-families.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

for (const backend of backends()) {
  t.test(`back-channel logout events on ${backend.name}`, async (t) => {
    const e: TestEnv = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const rp = await LogoutRp.start(issuer, { now: () => e.clock.now() });
    t.teardown(() => rp.close());

    // A: sub-only notices for user-wide events; B: requires sid (and signs ES256 ID tokens); C: no back-channel URI
    const a = await createClient(e.rt, ['--name', 'A', '--redirect-uri', REDIRECT, '--first-party', '--backchannel-logout-uri', rp.uri('a'), '--scopes', 'openid profile offline_access']);
    const b = await createClient(e.rt, ['--name', 'B', '--redirect-uri', REDIRECT, '--first-party', '--id-token-alg', 'ES256', '--backchannel-logout-uri', rp.uri('b'), '--backchannel-logout-session-required', '--refresh-without-offline']);
    const c = await createClient(e.rt, ['--name', 'C', '--redirect-uri', REDIRECT, '--first-party']);
    rp.register('a', a.clientId, 'RS256');
    rp.register('b', b.clientId, 'ES256');
    const admin = await createClient(e.rt, ['--name', 'Admin', '--admin']);
    const adminTok = await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin', resource: `${issuer}/admin` }, { clientId: admin.clientId, secret: admin.clientSecret });
    const ADMIN = adminTok.body.access_token as string;
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${issuer}/admin${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    let users = 0;
    const newUser = async () => {
      const email = `u${++users}@example.com`;
      const id = await createUser(e.rt, email, 'user password 1');
      return { id, email };
    };
    const login = async (client: TestClient, email: string, browser: Browser, scope = 'openid'): Promise<TokenSet> =>
      (await loginAndRedeem({ issuer, clientId: client.clientId, secret: client.clientSecret, redirectUri: REDIRECT, email, password: 'user password 1', scope, browser })).tokens;
    const sidOf = (idToken: string): string => JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString()).sid as string;

    /** Wait until the RP has accepted `n` more tokens than `from`; return them. */
    const nextTokens = async (from: number, n: number): Promise<ReceivedToken[]> => {
      await waitFor(async () => (rp.accepted.length >= from + n ? true : undefined), 30000, 20);
      return rp.accepted.slice(from);
    };
    const summary = (r: ReceivedToken[]) =>
      r
        .map((x) => `${x.label} sub=${x.claims.sub ?? '-'} sid=${x.claims.sid ?? '-'}`)
        .sort()
        .join('\n');
    const undelivered = async () => Number((await e.rt.db.selectFrom('logout_notices').select((eb) => eb.fn.countAll().as('n')).where('delivered_at', 'is', null).executeTakeFirstOrThrow()).n);
    const settle = async () => waitFor(async () => ((await undelivered()) === 0 ? true : undefined), 30000, 20);

    t.teardown(() => {
      if (rp.problems.length) t.fail(`the RP refused tokens:\n${rp.problems.join('\n')}`);
    });

    await t.test('registration, update, listing, discovery', async (t) => {
      const listed = (await cli(e.rt, ['clients', 'list'])) as unknown as Record<string, unknown>[];
      const la = listed.find((x) => x.client_id === a.clientId)!;
      t.equal(la.backchannel_logout_uri, rp.uri('a'));
      t.equal(la.backchannel_logout_session_required, false);
      t.equal(listed.find((x) => x.client_id === b.clientId)!.backchannel_logout_session_required, true);
      t.equal(listed.find((x) => x.client_id === c.clientId)!.backchannel_logout_uri, null);
      const viaApi = await api('GET', `/clients/${b.clientId}`);
      t.equal(viaApi.status, 200);
      t.equal(viaApi.body.backchannel_logout_uri, rp.uri('b'));
      t.equal(viaApi.body.backchannel_logout_session_required, true);
      t.equal((await api('GET', '/clients/nope')).status, 404);
      t.ok(((await api('GET', '/clients')).body.clients as unknown[]).length >= 4);

      const ctx = cliContextFor(e.rt);
      for (const bad of ['http://rp.example/bcl', 'https://rp.example/bcl#frag', '/relative', 'ftp://rp.example/x', 'https://user:pw@rp.example/x']) {
        const r = await runCommand(['clients', 'create', '--name', 'X', '--redirect-uri', REDIRECT, '--backchannel-logout-uri', bad], ctx, undefined);
        t.equal(r.code, 1, `create refuses ${bad}`);
        t.match(r.stderr, /--backchannel-logout-uri/);
        const u = await runCommand(['clients', 'update', c.clientId, '--backchannel-logout-uri', bad], ctx, undefined);
        t.equal(u.code, 1, `update refuses ${bad}`);
      }
      t.equal((await runCommand(['clients', 'create', '--name', 'X', '--redirect-uri', REDIRECT, '--backchannel-logout-session-required'], ctx, undefined)).code, 1, 'session-required needs a URI');
      t.equal((await runCommand(['clients', 'update', 'no-such-client', '--name', 'Y'], ctx, undefined)).code, 1);
      t.equal((await runCommand(['clients', 'update', c.clientId], ctx, undefined)).code, 1, 'nothing to change');
      t.equal((await runCommand(['clients', 'update', c.clientId, '--redirect-uri', 'http://evil.example/cb'], ctx, undefined)).code, 1, 'redirect URIs validated as at create');

      // update: set, then clear, then set again; redirect and post-logout URIs and the name too
      const u1 = await cli(e.rt, ['clients', 'update', c.clientId, '--name', 'C two', '--backchannel-logout-uri', 'https://c.example/bcl', '--backchannel-logout-session-required', '--post-logout-redirect-uri', 'http://127.0.0.1:9999/bye', '--redirect-uri', REDIRECT, '--redirect-uri', 'http://127.0.0.1:9999/cb2']);
      t.equal(u1.name, 'C two');
      t.equal(u1.backchannel_logout_uri, 'https://c.example/bcl');
      t.equal(u1.backchannel_logout_session_required, true);
      t.same(u1.redirect_uris, [REDIRECT, 'http://127.0.0.1:9999/cb2']);
      t.same(u1.post_logout_redirect_uris, ['http://127.0.0.1:9999/bye']);
      const u2 = await cli(e.rt, ['clients', 'update', c.clientId, '--no-backchannel-logout-uri', '--no-post-logout-redirect-uris']);
      t.equal(u2.backchannel_logout_uri, null);
      t.equal(u2.backchannel_logout_session_required, false, 'clearing the URI clears session-required');
      t.same(u2.post_logout_redirect_uris, []);
      const cached = await e.app.inject({ method: 'GET', url: `/admin/clients/${c.clientId}`, headers: { authorization: `Bearer ${ADMIN}` } });
      t.equal(cached.json().name, 'C two');

      const d = await e.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
      t.equal(d.json().backchannel_logout_supported, true);
      t.equal(d.json().backchannel_logout_session_supported, true);
    });

    await t.test('RP-initiated logout: one token per client of the session, with sub and sid', async (t) => {
      const u = await newUser();
      const browser = new Browser(issuer);
      const ta = await login(a, u.email, browser);
      await login(b, u.email, browser);
      await login(c, u.email, browser);
      // another session of the same user: untouched
      await login(a, u.email, new Browser(issuer));
      const sid = sidOf(ta.id_token!);
      const from = rp.accepted.length;
      const out = await browser.get(`${issuer}/logout?id_token_hint=${encodeURIComponent(ta.id_token!)}`);
      t.equal(out.status, 200);
      const got = await nextTokens(from, 2);
      await settle();
      t.equal(summary(rp.accepted.slice(from)), summary([
        { label: 'a', claims: { sub: u.id, sid } } as ReceivedToken,
        { label: 'b', claims: { sub: u.id, sid } } as ReceivedToken,
      ]), 'A and B, each once, with sub and sid; C has no URI');
      for (const r of got) {
        t.ok(r.claims.jti && r.claims.iat && r.claims.exp, 'jti, iat, exp');
        t.equal(r.claims.aud, r.clientId, 'aud is the client');
        t.notOk('nonce' in r.claims, 'no nonce');
      }
      const notices = (await api('GET', '/logout-notices?status=delivered')).body.notices as Record<string, unknown>[];
      t.ok(notices.some((n) => n.jti === got[0]!.claims.jti && n.event === 'logout' && n.status === 'delivered'), 'the admin API lists the delivered notice');
    });

    await t.test('admin sign-out-everywhere: one sub-only token to A, one per session to B (sid required)', async (t) => {
      const u = await newUser();
      const b1 = new Browser(issuer);
      const b2 = new Browser(issuer);
      const s1 = sidOf((await login(a, u.email, b1)).id_token!);
      await login(b, u.email, b1);
      const s2 = sidOf((await login(b, u.email, b2)).id_token!);
      await login(a, u.email, b2);
      const from = rp.accepted.length;
      t.equal((await api('POST', `/users/${u.id}/logout-everywhere`)).status, 200);
      await nextTokens(from, 3);
      await settle();
      t.equal(
        summary(rp.accepted.slice(from)),
        summary([
          { label: 'a', claims: { sub: u.id } } as ReceivedToken,
          { label: 'b', claims: { sub: u.id, sid: s1 } } as ReceivedToken,
          { label: 'b', claims: { sub: u.id, sid: s2 } } as ReceivedToken,
        ]),
      );
    });

    await t.test('admin session revoke: the family’s client, its session', async (t) => {
      const u = await newUser();
      const browser = new Browser(issuer);
      await login(a, u.email, browser, 'openid offline_access');
      const tb = await login(b, u.email, browser);
      const fam = (await api('GET', `/users/${u.id}/sessions`)).body.sessions as { id: string; client_id: string }[];
      const famB = fam.find((f) => f.client_id === b.clientId)!;
      const from = rp.accepted.length;
      t.equal((await api('DELETE', `/sessions/${famB.id}`)).status, 200);
      await nextTokens(from, 1);
      await settle();
      t.equal(summary(rp.accepted.slice(from)), summary([{ label: 'b', claims: { sub: u.id, sid: sidOf(tb.id_token!) } } as ReceivedToken]));
      // revoking it again: nothing new
      const again = rp.accepted.length;
      t.equal((await api('DELETE', `/sessions/${famB.id}`)).body.already_revoked, true);
      await settle();
      t.equal(rp.accepted.length, again);
    });

    for (const event of ['disabled', 'new password', 'deleted'] as const) {
      await t.test(`user ${event}: every client with a live family or an ID token in a live session`, async (t) => {
        const u = await newUser();
        const browser = new Browser(issuer);
        await login(a, u.email, browser, 'openid offline_access');
        const sb = sidOf((await login(b, u.email, browser)).id_token!);
        const from = rp.accepted.length;
        if (event === 'disabled') t.equal((await api('POST', `/users/${u.id}/disable`)).status, 200);
        if (event === 'new password') t.equal((await api('PUT', `/users/${u.id}/password`, { password: 'another password 2' })).status, 200);
        if (event === 'deleted') await cli(e.rt, ['users', 'delete', u.id]);
        await nextTokens(from, 2);
        await settle();
        t.equal(summary(rp.accepted.slice(from)), summary([{ label: 'a', claims: { sub: u.id } } as ReceivedToken, { label: 'b', claims: { sub: u.id, sid: sb } } as ReceivedToken]));
      });
    }

    await t.test('refresh-token reuse detected: the family’s client, its session', async (t) => {
      const u = await newUser();
      const tb = await login(b, u.email, new Browser(issuer));
      const first = tb.refresh_token!;
      const r1 = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: first }, { clientId: b.clientId, secret: b.clientSecret });
      t.equal(r1.status, 200);
      const from = rp.accepted.length;
      const reuse = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: first }, { clientId: b.clientId, secret: b.clientSecret });
      t.equal(reuse.body.error, 'invalid_grant');
      await nextTokens(from, 1);
      await settle();
      t.equal(summary(rp.accepted.slice(from)), summary([{ label: 'b', claims: { sub: u.id, sid: sidOf(tb.id_token!) } } as ReceivedToken]));
    });

    await t.test('a revocation that rolls back sends nothing', async (t) => {
      const u = await newUser();
      await login(a, u.email, new Browser(issuer), 'openid offline_access');
      const before = Number((await e.rt.db.selectFrom('logout_notices').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      const from = rp.accepted.length;
      await t.rejects(
        e.rt.db.transaction().execute(async (trx) => {
          t.equal(await queueUserLogout(trx, u.id, 'logout_everywhere', new Date(e.clock.now())), 1, 'a notice was written in the transaction');
          await revokeFamiliesWhere(trx, { userId: u.id }, 'logout_everywhere', new Date(e.clock.now()));
          throw new Error('rolled back');
        }),
        /rolled back/,
      );
      const after = Number((await e.rt.db.selectFrom('logout_notices').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      t.equal(after, before, 'no notice survived the rollback');
      // a marker revocation afterwards: once its token arrives, the rolled-back one would have too
      const marker = await newUser();
      await login(a, marker.email, new Browser(issuer), 'openid offline_access');
      t.equal((await api('POST', `/users/${marker.id}/logout-everywhere`)).status, 200);
      await nextTokens(from, 1);
      await settle();
      t.equal(summary(rp.accepted.slice(from)), summary([{ label: 'a', claims: { sub: marker.id } } as ReceivedToken]), 'only the marker’s token arrived');
    });

    await t.test('every token was valid, none was delivered twice', async (t) => {
      t.same(rp.problems, []);
      t.same(rp.duplicates, []);
      const jtis = rp.accepted.map((r) => r.claims.jti);
      t.equal(new Set(jtis).size, jtis.length);
      const list = await cli(e.rt, ['logout-notices', 'list', '--delivered']);
      t.equal((list as unknown as unknown[]).length, rp.accepted.length, 'logout-notices list shows each delivered notice');
      t.same(await cli(e.rt, ['logout-notices', 'list', '--failed']), []);
    });
  });
}

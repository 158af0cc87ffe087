// Issue 23, findings 1 and 2: "end everything of this user" (logout everywhere, disable, a new
// password) must win against a code redeemed and a login completing at the same moment, on two
// replicas of one Postgres with real concurrent connections. On PGlite (one process, one
// connection) the same assertions hold trivially and are checked too.
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { sql } from 'kysely';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { pkce, tokenRequest } from '../helpers/flow.js';
import { Browser, authorizeWithLogin } from '../helpers/http-login.js';
import { createPasswordHasher, type PasswordHasher } from '../../src/accounts/passwords.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const EMAIL = 'race@example.com';
const PASSWORD = 'race password 1';
const CODES = 40;
const MANY = 300;

const urlOf = (e: TestEnv) => `http://127.0.0.1:${(e.app.server.address() as AddressInfo).port}`;

/** A hasher whose verifications wait for `release()` once `hold()` was called: a login held just after its argon2 check. */
function gatedHasher(): PasswordHasher & { hold(): void; release(): void; verifying: () => number } {
  const inner = createPasswordHasher();
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  let verifying = 0;
  return {
    ...inner,
    async verify(hash, password) {
      const ok = await inner.verify(hash, password);
      if (gate) {
        verifying++;
        await gate;
      }
      return ok;
    },
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      open?.();
      gate = undefined;
    },
    verifying: () => verifying,
  };
}

for (const backend of backends()) {
  t.test(`revocation races on ${backend.name}`, async (t) => {
    const dbUrl = await backend.create();
    const hasher = gatedHasher();
    const a = await createTestEnv(dbUrl, { listen: true, passwords: hasher });
    t.teardown(() => a.close());
    const b = backend.name === 'postgres' ? await createTestEnv(dbUrl, { listen: true, env: { ISSUER: a.config.issuer } }) : undefined;
    if (b) t.teardown(() => b.close());
    const replicas = [urlOf(a), ...(b ? [urlOf(b)] : [])];
    const issuer = a.config.issuer;
    const userId = await createUser(a.rt, EMAIL, PASSWORD);
    const app: TestClient = await createClient(a.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--refresh-without-offline', '--scopes', 'openid offline_access']);
    const admin = await createClient(a.rt, ['--name', 'Admin', '--admin']);
    const adminTok = await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin', resource: `${issuer}/admin` }, { clientId: admin.clientId, secret: admin.clientSecret });
    t.equal(adminTok.status, 200);
    // the admin acts on the other replica than the one A's logins go to, as in the review
    const adminAt = replicas[replicas.length - 1]!;
    const adminCall = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${adminAt}/admin${path}`, {
        method,
        headers: { authorization: `Bearer ${adminTok.body.access_token as string}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      await res.text();
      return res.status;
    };

    const authorizeUrl = (challenge: string) => {
      const u = new URL(`${issuer}/authorize`);
      const p = { response_type: 'code', client_id: app.clientId, redirect_uri: REDIRECT, scope: 'openid offline_access', state: 's', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256' };
      for (const [k, v] of Object.entries(p)) u.searchParams.set(k, v);
      return u.href;
    };

    /** Log in once, then mint `n` codes in the same login session (SSO), with their verifiers. */
    async function mintCodes(password: string, n: number): Promise<Array<{ code: string; verifier: string }>> {
      const browser = new Browser(issuer);
      const first = pkce();
      const step = await authorizeWithLogin(browser, authorizeUrl(first.challenge), EMAIL, password);
      t.ok(step.location?.startsWith(REDIRECT), 'logged in');
      const codes = [{ code: new URL(step.location!).searchParams.get('code')!, verifier: first.verifier }];
      while (codes.length < n) {
        const p = pkce();
        const s = await browser.follow(await browser.get(authorizeUrl(p.challenge)));
        const code = s.location?.startsWith(REDIRECT) ? new URL(s.location).searchParams.get('code') : null;
        if (!code) throw new Error(`no SSO code: ${s.status} ${s.location ?? s.body.slice(0, 200)}`);
        codes.push({ code, verifier: p.verifier });
      }
      return codes;
    }

    /**
     * Redeem every code, one every few ms, alternating replicas, with `change` fired in the middle.
     * The user first gets a few hundred live families (a user of many apps and devices), so ending
     * them takes the change long enough for redemptions to commit while it runs.
     */
    async function redeemDuring(codes: Array<{ code: string; verifier: string }>, change: () => Promise<number>) {
      const [first, ...rest] = codes;
      const r0 = await tokenRequest(replicas[0]!, { grant_type: 'authorization_code', code: first!.code, redirect_uri: REDIRECT, code_verifier: first!.verifier }, { clientId: app.clientId, secret: app.clientSecret });
      t.equal(r0.status, 200, 'a first family');
      await sql`
        INSERT INTO refresh_families (id, user_id, client_id, scopes, resources, auth_time, session_sid, offline, created_at, last_used_at, idle_expires_at, absolute_expires_at, access_expires_at)
        SELECT gen_random_uuid(), f.user_id, f.client_id, f.scopes, f.resources, f.auth_time, f.session_sid, f.offline, f.created_at, f.last_used_at, f.idle_expires_at, f.absolute_expires_at, f.access_expires_at
        FROM refresh_families f, generate_series(1, ${MANY}::int) WHERE f.code_digest IS NOT NULL AND f.user_id = ${userId}::uuid AND f.revoked_at IS NULL
      `.execute(a.rt.db);
      codes = rest;
      const redemptions: Array<Promise<{ status: number; refresh?: string }>> = [];
      let changed: Promise<number> | undefined;
      for (let i = 0; i < codes.length; i++) {
        if (i === Math.floor(codes.length / 4)) changed = change();
        const { code, verifier } = codes[i]!;
        redemptions.push(
          tokenRequest(replicas[i % replicas.length]!, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, { clientId: app.clientId, secret: app.clientSecret }).then((r) => ({
            status: r.status,
            refresh: r.body.refresh_token as string | undefined,
          })),
        );
        await new Promise((r) => setTimeout(r, 4));
      }
      const results = await Promise.all(redemptions);
      return { results, changeStatus: await changed! };
    }

    const liveFamilies = async () =>
      Number((await a.rt.db.selectFrom('refresh_families').select((eb) => eb.fn.countAll().as('n')).where('user_id', '=', userId).where('revoked_at', 'is', null).executeTakeFirstOrThrow()).n);

    async function assertNothingSurvives(t: Test, results: Array<{ status: number; refresh?: string }>, what: string) {
      t.equal(await liveFamilies(), 0, `${what}: no family of the user is live after the change committed`);
      const issued = results.filter((r) => r.status === 200 && r.refresh);
      let rotated = 0;
      for (const r of issued) {
        const res = await tokenRequest(replicas[0]!, { grant_type: 'refresh_token', refresh_token: r.refresh! }, { clientId: app.clientId, secret: app.clientSecret });
        if (res.status === 200) rotated++;
      }
      t.equal(rotated, 0, `${what}: none of the ${issued.length} refresh tokens redeemed during the change rotates`);
    }

    await t.test('logout everywhere while codes are redeemed on both replicas', async (t) => {
      const codes = await mintCodes(PASSWORD, CODES);
      const { results, changeStatus } = await redeemDuring(codes, () => adminCall('POST', `/users/${userId}/logout-everywhere`));
      t.equal(changeStatus, 200);
      t.ok(results.some((r) => r.status === 200), 'some codes were redeemed before the change');
      await assertNothingSurvives(t, results, 'logout everywhere');
    });

    await t.test('a new password while codes are redeemed', async (t) => {
      const codes = await mintCodes(PASSWORD, CODES);
      const { results, changeStatus } = await redeemDuring(codes, () => adminCall('PUT', `/users/${userId}/password`, { password: 'race password 2' }));
      t.equal(changeStatus, 200);
      await assertNothingSurvives(t, results, 'password change');
    });

    await t.test('disable while codes are redeemed; enabling again brings nothing back', async (t) => {
      const codes = await mintCodes('race password 2', CODES);
      const { results, changeStatus } = await redeemDuring(codes, () => adminCall('POST', `/users/${userId}/disable`));
      t.equal(changeStatus, 200);
      t.equal(await adminCall('POST', `/users/${userId}/enable`), 200);
      await assertNothingSurvives(t, results, 'disable, then enable');
    });

    await t.test('a login with the old password, in flight during a password change, creates no session', async (t) => {
      const before = Number((await a.rt.db.selectFrom('login_sessions').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      hasher.hold();
      const browser = new Browser(issuer);
      // the login's argon2 check passes with the current password, then waits
      const login = authorizeWithLogin(browser, authorizeUrl(pkce().challenge), EMAIL, 'race password 2');
      const until = Date.now() + 10_000;
      while (hasher.verifying() === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      t.equal(hasher.verifying(), 1, 'the login has verified the old password and is held');
      // the password changes (on the other replica where there is one) and commits
      t.equal(await adminCall('PUT', `/users/${userId}/password`, { password: 'race password 3' }), 200);
      hasher.release();
      const step = await login;
      t.notOk(step.location?.startsWith(REDIRECT), 'no code for a login whose password changed under it');
      t.equal(step.status, 401, 'the login page again, with the generic error');
      const after = Number((await a.rt.db.selectFrom('login_sessions').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      t.equal(after, before, 'no login session was created');
      const audit = await a.rt.db.selectFrom('audit_events').select('details').where('type', '=', 'login.failure').execute();
      t.ok(audit.some((e) => JSON.stringify(e.details).includes('credentials_changed')), 'audited as a failure: credentials changed');
      // the new password works
      const ok = await authorizeWithLogin(new Browser(issuer), authorizeUrl(pkce().challenge), EMAIL, 'race password 3');
      t.ok(ok.location?.startsWith(REDIRECT), 'the new password signs in');
    });

    await t.test('a login held during a disable creates no session', async (t) => {
      hasher.hold();
      const login = authorizeWithLogin(new Browser(issuer), authorizeUrl(pkce().challenge), EMAIL, 'race password 3');
      const seen = hasher.verifying();
      const until = Date.now() + 10_000;
      while (hasher.verifying() === seen && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      t.equal(await adminCall('POST', `/users/${userId}/disable`), 200);
      hasher.release();
      const step = await login;
      t.notOk(step.location?.startsWith(REDIRECT), 'no code for a user disabled during the login');
      const live = await a.rt.db.selectFrom('login_sessions').select('sid').where('user_id', '=', userId).where('ended_at', 'is', null).execute();
      t.equal(live.length, 0, 'no live session of the disabled user');
      t.equal(await adminCall('POST', `/users/${userId}/enable`), 200);
    });
  });
}

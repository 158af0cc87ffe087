// Sealed refresh tokens (src/tokens/refresh-tokens.ts): the format on its own (round trip, one
// spelling, forgery and alteration refused), and at the endpoints — a forged or altered token is
// invalid_grant and changes nothing; a stale generation revokes the family (or, within the grace,
// does not); a token from before the sealing (a digest row) rotates once to a sealed successor;
// /introspect and /revoke follow; nothing in the tables yields a token.
import crypto from 'node:crypto';
import t, { type Test } from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest, type TokenSet } from '../helpers/flow.js';
import { openRefreshToken, sealRefreshToken, SEALED_REFRESH_TOKEN_LENGTH } from '../../src/tokens/refresh-tokens.js';
import { sealCode } from '../../src/tokens/codes.js';
import { digest, randomToken } from '../../src/core/crypto.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const FID = '0f8fad5b-d9cb-469f-a165-70867728950e';

t.test('the format: round trip, one spelling, forgery and alteration refused', async (t) => {
  const secret = crypto.randomBytes(32);
  const at = new Date('2026-12-01T12:00:00.123Z');
  const token = sealRefreshToken(secret, FID, 7, at);
  t.equal(token.length, SEALED_REFRESH_TOKEN_LENGTH);
  t.ok(token.length <= 200, 'within the grant’s bound');
  t.match(token, /^[A-Za-z0-9_-]+$/);
  t.same(openRefreshToken(secret, token), { familyId: FID, generation: 7, issuedAt: at });
  t.not(sealRefreshToken(secret, FID, 7, at), token, 'a fresh salt and IV each time');
  t.equal(openRefreshToken(crypto.randomBytes(32), token), undefined, 'another secret');
  // every character changed in turn (the last one's low bits are padding: its spelling is refused too)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  let opened = 0;
  for (let i = 0; i < token.length; i++) {
    const c = alphabet[(alphabet.indexOf(token[i]!) + 1) % 64]!;
    if (openRefreshToken(secret, token.slice(0, i) + c + token.slice(i + 1))) opened++;
  }
  t.equal(opened, 0, 'no altered character opens');
  t.equal(openRefreshToken(secret, token.slice(0, -1)), undefined, 'truncated');
  t.equal(openRefreshToken(secret, `${token}A`), undefined, 'extended');
  t.equal(openRefreshToken(secret, token.replace(/./, '+')), undefined, 'not base64url');
  t.equal(openRefreshToken(secret, randomToken(72)), undefined, 'random bytes of the right length');
  // a code sealed under the same secret has another purpose (associated data) and shape
  const code = sealCode(secret, { clientId: 'c', userId: FID, redirectUri: REDIRECT, codeChallenge: null, scopes: [], resources: [], nonce: null, authTime: at, sessionSid: null }, at, 60);
  t.equal(openRefreshToken(secret, code), undefined, 'an authorization code is no refresh token');
  t.throws(() => sealRefreshToken(secret, 'not-a-uuid', 0, at));
  t.throws(() => sealRefreshToken(secret, FID, -1, at));
});

async function setup(t: Test, databaseUrl: string, env: Record<string, string> = {}) {
  const e = await createTestEnv(databaseUrl, { listen: true, env });
  t.teardown(() => e.close());
  await createUser(e.rt, 'sam@example.com', 'sam password 1');
  const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid profile offline_access']);
  const other = await createClient(e.rt, ['--name', 'Other', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid profile offline_access']);
  return { e, app, other };
}

const login = async (e: TestEnv, app: TestClient): Promise<TokenSet> =>
  (await loginAndRedeem({ issuer: e.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'sam@example.com', password: 'sam password 1', scope: 'openid profile offline_access' })).tokens;
const refresh = (e: TestEnv, c: TestClient, rt: string) => tokenRequest(e.config.issuer, { grant_type: 'refresh_token', refresh_token: rt }, { clientId: c.clientId, secret: c.clientSecret });
const introspect = async (e: TestEnv, c: TestClient, token: string) => (await postForm(`${e.config.issuer}/introspect`, { token }, { clientId: c.clientId, secret: c.clientSecret })).body;
const fidOf = (at: string) => (JSON.parse(Buffer.from(at.split('.')[1]!, 'base64url').toString()) as { fid: string }).fid;
const family = (e: TestEnv, id: string) =>
  e.rt.db.selectFrom('refresh_families').select(['generation', 'revoked_at', 'revoked_reason', 'last_used_at', 'rotated_at']).where('id', '=', id).executeTakeFirstOrThrow();

for (const backend of backends()) {
  t.test(`sealed refresh tokens on ${backend.name}`, async (t) => {
    const { e, app, other } = await setup(t, await backend.create());

    await t.test('forged and altered tokens: invalid_grant, and nothing changes', async (t) => {
      const s = await login(e, app);
      const fid = fidOf(s.access_token);
      const token = s.refresh_token!;
      t.equal(token.length, SEALED_REFRESH_TOKEN_LENGTH, 'the code grant issues a sealed token');
      t.same(openRefreshToken(e.rt.refreshSecret, token)?.familyId, fid, 'naming its family');
      const before = await family(e, fid);
      t.equal(before.generation, 0);
      const altered = token.slice(0, 40) + (token[40] === 'A' ? 'B' : 'A') + token.slice(41);
      const forgeries = [
        altered,
        randomToken(72),
        sealRefreshToken(crypto.randomBytes(32), fid, 0, new Date(e.clock.now())),
        sealRefreshToken(e.rt.codeSecret, fid, 0, new Date(e.clock.now())),
        '!'.repeat(SEALED_REFRESH_TOKEN_LENGTH),
        `${token.slice(0, -2)}==`,
      ];
      for (const f of forgeries) {
        const r = await refresh(e, app, f);
        t.equal(r.status, 400);
        t.equal(r.body.error, 'invalid_grant');
        t.same(await introspect(e, app, f), { active: false });
        t.equal((await postForm(`${e.config.issuer}/revoke`, { token: f }, { clientId: app.clientId, secret: app.clientSecret })).status, 200);
      }
      t.same(await family(e, fid), before, 'the family row is untouched');
      t.equal((await refresh(e, app, token)).status, 200, 'the genuine token still rotates');
    });

    await t.test('a rotation moves the generation on; a stale generation revokes the family', async (t) => {
      const s = await login(e, app);
      const fid = fidOf(s.access_token);
      const r1 = await refresh(e, app, s.refresh_token!);
      t.equal(r1.status, 200);
      const r2 = await refresh(e, app, r1.body.refresh_token as string);
      t.equal(r2.status, 200);
      const live = r2.body.refresh_token as string;
      t.equal(openRefreshToken(e.rt.refreshSecret, live)?.generation, 2);
      t.equal((await family(e, fid)).generation, 2, 'the family is at generation 2');
      t.equal((await e.rt.db.selectFrom('refresh_tokens').select('token_digest').where('family_id', '=', fid).execute()).length, 0, 'no token row is written');

      // introspection: only the live generation is active
      const active = await introspect(e, app, live);
      t.equal(active.active, true);
      t.equal(active.token_type, 'refresh_token');
      t.equal(active.iat, Math.floor(e.clock.now() / 1000));
      t.same(await introspect(e, app, r1.body.refresh_token as string), { active: false }, 'a consumed generation is inactive');
      t.same(await introspect(e, other, live), { active: false }, 'another client’s token is inactive');

      // another client presents it: refused, nothing changes
      t.equal((await refresh(e, other, live)).body.error, 'invalid_grant');
      t.equal((await family(e, fid)).revoked_at, null);

      const replay = await refresh(e, app, r1.body.refresh_token as string);
      t.equal(replay.status, 400);
      t.equal(replay.body.error, 'invalid_grant');
      const after = await family(e, fid);
      t.ok(after.revoked_at, 'revoked');
      t.equal(after.revoked_reason, 'refresh_reuse');
      t.equal(after.generation, 2, 'no rotation');
      t.equal((await refresh(e, app, live)).body.error, 'invalid_grant', 'the live token is dead too');
      t.same(await introspect(e, app, live), { active: false });
      const audit = await e.rt.db.selectFrom('audit_events').select('details').where('type', '=', 'refresh.reuse_detected').execute();
      t.ok(audit.some((a) => JSON.stringify(a.details).includes(fid)), 'a reuse event for the family');
    });

    await t.test('/revoke of a sealed token revokes its family; another client’s is refused', async (t) => {
      const s = await login(e, app);
      const fid = fidOf(s.access_token);
      const foreign = await postForm(`${e.config.issuer}/revoke`, { token: s.refresh_token! }, { clientId: other.clientId, secret: other.clientSecret });
      t.equal(foreign.status, 400);
      t.equal(foreign.body.error, 'unauthorized_client');
      t.equal((await family(e, fid)).revoked_at, null);
      t.equal((await postForm(`${e.config.issuer}/revoke`, { token: s.refresh_token! }, { clientId: app.clientId, secret: app.clientSecret })).status, 200);
      t.equal((await family(e, fid)).revoked_reason, 'revoked_by_client');
      t.equal((await refresh(e, app, s.refresh_token!)).body.error, 'invalid_grant');
    });

    await t.test('a token from before the sealing (a digest row) rotates once, to a sealed successor', async (t) => {
      const s = await login(e, app);
      const fid = fidOf(s.access_token);
      // the way tokens were issued before the migration: 256 random bits, stored as a digest
      const legacy = randomToken(32);
      await e.rt.db.insertInto('refresh_tokens').values({ token_digest: digest(legacy), family_id: fid, created_at: new Date(e.clock.now()) }).execute();
      t.equal((await introspect(e, app, legacy)).active, true, 'active at introspection');
      const r = await refresh(e, app, legacy);
      t.equal(r.status, 200);
      const successor = r.body.refresh_token as string;
      t.equal(successor.length, SEALED_REFRESH_TOKEN_LENGTH, 'its successor is sealed');
      t.same(openRefreshToken(e.rt.refreshSecret, successor), { familyId: fid, generation: 1, issuedAt: new Date(e.clock.now()) });
      const row = await e.rt.db.selectFrom('refresh_tokens').selectAll().where('token_digest', '=', digest(legacy)).executeTakeFirstOrThrow();
      t.ok(row.consumed_at, 'the digest row is consumed');
      t.equal(row.successor_digest, null, 'and names no stored successor');
      t.equal((await family(e, fid)).generation, 1);
      t.same(await introspect(e, app, legacy), { active: false }, 'consumed: inactive');
      t.equal((await refresh(e, app, successor)).status, 200, 'the sealed successor rotates');
      // the old token again: reuse
      t.equal((await refresh(e, app, legacy)).body.error, 'invalid_grant');
      t.equal((await family(e, fid)).revoked_reason, 'refresh_reuse');
    });

    await t.test('a database dump yields no refresh token', async (t) => {
      const s = await login(e, app);
      const issued = [s.refresh_token!];
      for (let i = 0; i < 3; i++) issued.push((await refresh(e, app, issued.at(-1)!)).body.refresh_token as string);
      const dump = JSON.stringify([
        ...(await e.rt.db.selectFrom('refresh_families').selectAll().execute()),
        ...(await e.rt.db.selectFrom('refresh_tokens').selectAll().execute()),
        ...(await e.rt.db.selectFrom('server_secrets').selectAll().execute()).map((r) => ({ ...r, sealed: Buffer.from(r.sealed as unknown as Uint8Array).toString('hex') })),
        ...(await e.rt.db.selectFrom('audit_events').selectAll().execute()),
      ]);
      for (const token of issued) {
        const raw = Buffer.from(token, 'base64url');
        for (const form of [token, raw.toString('hex'), raw.toString('base64'), digest(token), crypto.hash('sha256', token, 'hex'), raw.subarray(28, 56).toString('hex')]) {
          t.notOk(dump.includes(form), `no ${form.slice(0, 12)}… in the tables`);
        }
      }
      const secret = e.rt.refreshSecret;
      t.notOk(dump.includes(secret.toString('hex')) || dump.includes(secret.toString('base64')), 'the sealing secret is stored sealed only');
    });
  });

  t.test(`the reuse grace window for sealed tokens on ${backend.name}`, async (t) => {
    const { e, app } = await setup(t, await backend.create(), { REFRESH_REUSE_GRACE_SECONDS: '10' });

    await t.test('the previous generation within the grace: invalid_grant, the family lives', async (t) => {
      const s = await login(e, app);
      const fid = fidOf(s.access_token);
      e.clock.advance(60); // the first token is older than the grace when it is consumed
      const r1 = await refresh(e, app, s.refresh_token!);
      t.equal(r1.status, 200);
      e.clock.advance(9);
      t.equal((await refresh(e, app, s.refresh_token!)).body.error, 'invalid_grant');
      t.equal((await family(e, fid)).revoked_at, null, 'within the grace of its consumption');
      t.equal((await family(e, fid)).generation, 1, 'and nothing rotated');
      e.clock.advance(2);
      t.equal((await refresh(e, app, s.refresh_token!)).body.error, 'invalid_grant');
      t.equal((await family(e, fid)).revoked_reason, 'refresh_reuse', 'past the grace: revoked');
    });

    await t.test('an older generation: within the grace only when it was issued within it', async (t) => {
      const s = await login(e, app);
      const fid = fidOf(s.access_token);
      const r1 = await refresh(e, app, s.refresh_token!);
      const r2 = await refresh(e, app, r1.body.refresh_token as string);
      t.equal(r2.status, 200);
      e.clock.advance(5);
      t.equal((await refresh(e, app, s.refresh_token!)).body.error, 'invalid_grant');
      t.equal((await family(e, fid)).revoked_at, null, 'issued 5 s ago: a duplicate within the grace');

      const s2 = await login(e, app);
      const fid2 = fidOf(s2.access_token);
      e.clock.advance(60);
      const a = await refresh(e, app, s2.refresh_token!);
      t.equal((await refresh(e, app, a.body.refresh_token as string)).status, 200);
      // its consumption (a moment ago) is not recorded once a later rotation happened: only its
      // issue time is known, 60 s ago, so it counts as past the grace
      t.equal((await refresh(e, app, s2.refresh_token!)).body.error, 'invalid_grant');
      t.equal((await family(e, fid2)).revoked_reason, 'refresh_reuse');
    });
  });
}

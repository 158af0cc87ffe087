// Issue 23, findings 3 and 4, at /revoke.
// 3: a public client's DPoP-bound refresh or access token is revoked only with a proof by its key:
//    the client id alone (anyone may send it) and an old bound token are not enough to end the
//    holder's grant; without the proof (or with another key's) the answer is invalid_dpop_proof and
//    nothing changes.
// 4: revoking one client_credentials token refuses its siblings (they share the client's status
//    index) at our own endpoints — /introspect and the admin API — and in the status list, until the
//    last sibling has expired, not only until the revoked token's own exp.
import crypto from 'node:crypto';
import t from 'tap';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { StatusList } from '@sd-jwt/jwt-status-list';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { pkce, postForm, tokenRequest } from '../helpers/flow.js';
import { Browser, authorizeWithLogin } from '../helpers/http-login.js';
import { waitFor } from '../helpers/process.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const EMAIL = 'dee@example.com';
const PASSWORD = 'dee password 1';
type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

async function proof(keys: KeyPair, htu: string, iat: number): Promise<string> {
  return new SignJWT({ htm: 'POST', htu, iat, jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(keys.publicKey) })
    .sign(keys.privateKey);
}

async function form(url: string, body: Record<string, string>, dpop?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (dpop) headers.dpop = dpop;
  const res = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(body) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown>, headers: res.headers };
}

for (const backend of backends()) {
  t.test(`revocation of bound tokens and of client_credentials siblings on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true, env: { ACCESS_TOKEN_TTL: '400', DPOP_NONCE: 'false' } });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const now = () => Math.floor(e.clock.now() / 1000);
    await createUser(e.rt, EMAIL, PASSWORD);

    await t.test('finding 3: a bound token of a public client needs a proof by its key at /revoke', async (t) => {
      const spa = await createClient(e.rt, ['--name', 'SPA', '--public', '--redirect-uri', REDIRECT, '--first-party', '--grant-types', 'authorization_code,refresh_token', '--scopes', 'openid offline_access']);
      const holder = await generateKeyPair('ES256', { extractable: true });
      const thief = await generateKeyPair('ES256', { extractable: true });
      const { verifier, challenge } = pkce();
      const u = new URL(`${issuer}/authorize`);
      for (const [k, v] of Object.entries({ response_type: 'code', client_id: spa.clientId, redirect_uri: REDIRECT, scope: 'openid offline_access', state: 's', code_challenge: challenge, code_challenge_method: 'S256' })) u.searchParams.set(k, v);
      const step = await authorizeWithLogin(new Browser(issuer), u.href, EMAIL, PASSWORD);
      const code = new URL(step.location!).searchParams.get('code')!;
      const tok = await form(`${issuer}/token`, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: spa.clientId }, await proof(holder, `${issuer}/token`, now()));
      t.equal(tok.status, 200, `tokens bound to the holder key ${JSON.stringify(tok.body)}`);
      t.equal(tok.body.token_type, 'DPoP');
      const refreshToken = tok.body.refresh_token as string;
      const accessToken = tok.body.access_token as string;
      const live = async () => (await e.rt.db.selectFrom('refresh_families').select('id').where('client_id', '=', spa.clientId).where('revoked_at', 'is', null).execute()).length;
      const denylisted = async () => (await e.rt.db.selectFrom('denylist').select('jti').execute()).length;
      const before = { live: await live(), denied: await denylisted() };
      t.equal(before.live, 1);

      for (const token of [refreshToken, accessToken]) {
        const kind = token === refreshToken ? 'refresh token' : 'access token';
        const none = await form(`${issuer}/revoke`, { token, client_id: spa.clientId });
        t.equal(none.status, 400, `${kind} without a proof: 400`);
        t.equal(none.body.error, 'invalid_dpop_proof', `${kind} without a proof: invalid_dpop_proof`);
        const stolen = await form(`${issuer}/revoke`, { token, client_id: spa.clientId }, await proof(thief, `${issuer}/revoke`, now()));
        t.equal(stolen.body.error, 'invalid_dpop_proof', `${kind} with a proof by another key: invalid_dpop_proof`);
        t.equal(await live(), before.live, `${kind}: the family is still live`);
        t.equal(await denylisted(), before.denied, `${kind}: nothing was denylisted`);
      }
      // the holder's grant goes on
      const rotated = await form(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: spa.clientId }, await proof(holder, `${issuer}/token`, now()));
      t.equal(rotated.status, 200, "the holder's refresh still works");
      // the holder itself revokes with its key
      const own = await form(`${issuer}/revoke`, { token: rotated.body.refresh_token as string, client_id: spa.clientId }, await proof(holder, `${issuer}/revoke`, now()));
      t.equal(own.status, 200, 'the holder revokes with a proof by its key');
      t.equal(await live(), 0, 'and the family ends');
    });

    await t.test('finding 4: revoking a client_credentials token refuses its siblings until the last has expired', async (t) => {
      const admin = await createClient(e.rt, ['--name', 'Admin', '--admin']);
      const get = async () => {
        const r = await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin', resource: `${issuer}/admin` }, { clientId: admin.clientId, secret: admin.clientSecret });
        t.equal(r.status, 200);
        return r.body.access_token as string;
      };
      const a = await get();
      e.clock.advance(390);
      const sibling = await get();
      const ref = (token: string) => (decodeJwt(token) as { status: { status_list: { idx: number; uri: string } } }).status.status_list;
      t.same(ref(sibling), ref(a), 'the siblings share the status index');
      // a caller introspects the tokens issued to it
      const introspect = async (token: string) => (await postForm(`${issuer}/introspect`, { token }, { clientId: admin.clientId, secret: admin.clientSecret })).body.active;
      const adminApi = async (token: string) => (await fetch(`${issuer}/admin/clients`, { headers: { authorization: `Bearer ${token}` } })).status;
      const bit = async (token: string) => {
        const res = await fetch(ref(token).uri);
        const lst = (decodeJwt(await res.text()) as { status_list: { lst: string } }).status_list.lst;
        return StatusList.decompressStatusList(lst, 1).getStatus(ref(token).idx);
      };
      t.equal(await introspect(sibling), true, 'the sibling is active before');
      t.equal(await adminApi(sibling), 200, 'and opens the admin API');

      t.equal((await postForm(`${issuer}/revoke`, { token: a }, { clientId: admin.clientId, secret: admin.clientSecret })).status, 200);
      t.equal(await introspect(sibling), false, '/introspect: the sibling is inactive right after the revoke');
      t.equal(await adminApi(sibling), 401, 'the admin API refuses the sibling');
      // the list is rebuilt from the denylist's notification, within seconds (not synchronously)
      t.equal(await waitFor(async () => ((await bit(sibling)) === 1 ? 1 : undefined), 10_000, 100), 1, "the sibling's status bit is set");

      // past the revoked token's exp plus the denylist's retention; the sibling is still unexpired
      e.clock.set((decodeJwt(a).exp! + 330) * 1000);
      t.ok(decodeJwt(sibling).exp! * 1000 > e.clock.now(), 'the sibling has not expired');
      t.equal(await introspect(sibling), false, '/introspect: still inactive after the revoked token would have left the denylist');
      t.equal(await adminApi(sibling), 401, 'the admin API still refuses it');
      t.equal(await bit(sibling), 1, 'its status bit is still set');

      const fresh = await get();
      t.not(ref(fresh).idx, ref(a).idx, 'a token issued after the revoke has a new status index');
      t.equal(await introspect(fresh), true, 'and is active');
      t.equal(await adminApi(fresh), 200);
    });
  });
}

// Issue 23, finding 6: a client id that Postgres cannot store (a NUL, a lone surrogate), decoded
// from the Basic header or read from an unverified client assertion's `sub`, is no client: 401
// invalid_client with WWW-Authenticate at every endpoint that authenticates clients — never a 500.
// So is a client's own, correctly signed assertion whose `jti` Postgres cannot store (the replay
// record's insert failed). A NUL in the form's client_id meets the shared input check first:
// 400 invalid_request, as for every other parameter. Nothing is recorded in either case.
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, tempDir } from '../helpers/runtime.js';
import { cli } from '../helpers/fixtures.js';

t.teardown(dropCreatedDatabases);

const ENDPOINTS = ['/token', '/revoke', '/introspect', '/par'];
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

for (const backend of backends()) {
  t.test(`unstorable client ids on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create());
    t.teardown(() => e.close());
    // a registered private_key_jwt client: its own, correctly signed assertion may still carry text Postgres refuses
    const keys = await generateKeyPair('ES256', { extractable: true });
    const jwksFile = path.join(tempDir(), 'jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256' }] }));
    const keyed = (await cli(e.rt, ['clients', 'create', '--name', 'Keyed', '--auth-method', 'private_key_jwt', '--jwks', jwksFile, '--grant-types', 'client_credentials', '--scopes', 'jobs', '--audiences', 'https://api.example.com'])).client_id as string;
    const now = Math.floor(e.clock.now() / 1000);
    const signed = (claims: Record<string, unknown>) =>
      new SignJWT({ iss: keyed, sub: keyed, aud: e.config.issuer, jti: crypto.randomUUID(), iat: now, exp: now + 60, ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(keys.privateKey);
    const assertion = (sub: string, iss = sub) =>
      new SignJWT({ jti: 'j1' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(iss)
        .setSubject(sub)
        .setAudience(e.config.issuer)
        .setExpirationTime('1m')
        .sign(new TextEncoder().encode('x'.repeat(32)));

    const cases: Array<{ name: string; headers: Record<string, string>; body: Record<string, string> }> = [
      { name: 'a NUL in the Basic header', headers: { authorization: `Basic ${b64('ab\u0000c:s')}` }, body: {} },
      { name: '%00 inside the Basic header', headers: { authorization: `Basic ${b64('ab%00c:s')}` }, body: {} },
      { name: 'a lone surrogate, percent-encoded, inside the Basic header', headers: { authorization: `Basic ${b64('ab%ED%A0%80c:s')}` }, body: {} },
      { name: "a NUL in an unverified assertion's sub", headers: {}, body: { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion('ab\u0000c') } },
      { name: "a NUL in an unverified assertion's iss", headers: {}, body: { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion(keyed, 'ab\u0000c') } },
    ];
    // made per request: a jti is accepted once
    const verifiedCases: Array<{ name: string; claims: Record<string, unknown> }> = [
      { name: "a NUL in a verified assertion's jti", claims: { jti: 'j\u00001' } },
      { name: "a lone surrogate in a verified assertion's jti", claims: { jti: 'j\uD800' } },
    ];
    for (const path of ENDPOINTS)
      for (const v of verifiedCases)
        cases.push({ name: `${v.name} (${path})`, headers: {}, body: { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await signed(v.claims) } });
    for (const path of ENDPOINTS) {
      for (const c of cases) {
        if (/\(\/\w+\)$/.test(c.name) && !c.name.endsWith(`(${path})`)) continue;
        const res = await e.app.inject({
          method: 'POST',
          url: path,
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...c.headers },
          payload: new URLSearchParams({ grant_type: 'client_credentials', token: 'x', response_type: 'code', ...c.body }).toString(),
        });
        const what = `${path}, ${c.name}`;
        t.equal(res.statusCode, 401, `${what}: 401`);
        t.equal(res.json().error, 'invalid_client', `${what}: invalid_client`);
        t.ok(res.headers['www-authenticate'], `${what}: WWW-Authenticate`);
        t.notMatch(res.body, /stack|at .*\.ts/, `${what}: no stack trace`);
      }
      // the form body passes the shared input check (src/http/plugins/input-sanity.ts) first
      const res = await e.app.inject({
        method: 'POST',
        url: path,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ grant_type: 'client_credentials', token: 'x', response_type: 'code', client_id: 'ab\u0000c', client_secret: 's' }).toString(),
      });
      t.equal(res.statusCode, 400, `${path}, a NUL in the form's client_id: 400`);
      t.equal(res.json().error, 'invalid_request', `${path}, a NUL in the form's client_id: invalid_request`);
    }
    const jtis = await e.rt.db.selectFrom('client_assertion_jtis').select('jti').execute();
    t.same(jtis, [], 'no assertion was recorded');
  });
}

// Issue 23, finding 8: a signed request object whose members hold text Postgres cannot store (a NUL
// or a lone surrogate, in a value, a nested claims member, an array or a member name) is
// invalid_request_object at /par and at /authorize — never a 500 — and nothing is stored.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, tempDir } from '../helpers/runtime.js';
import { createClient } from '../helpers/fixtures.js';
import { postForm } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9/cb';
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

for (const backend of backends()) {
  t.test(`unstorable request objects on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const keys = await generateKeyPair('ES256', { extractable: true });
    const jwksFile = path.join(tempDir(), 'jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'rp-1', alg: 'ES256', use: 'sig' }] }));
    const rp = await createClient(env.rt, ['--name', 'RP', '--redirect-uri', REDIRECT, '--first-party', '--jwks', jwksFile, '--scopes', 'openid email profile']);

    const sign = (extra: Record<string, unknown>) =>
      new SignJWT({ response_type: 'code', client_id: rp.clientId, redirect_uri: REDIRECT, scope: 'openid', code_challenge: CHALLENGE, code_challenge_method: 'S256', ...extra })
        .setProtectedHeader({ alg: 'ES256', kid: 'rp-1', typ: 'oauth-authz-req+jwt' })
        .setIssuer(rp.clientId)
        .setAudience(issuer)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(keys.privateKey);
    const stored = async () => Number((await env.rt.db.selectFrom('interactions').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

    const cases: Array<[string, Record<string, unknown>]> = [
      ['a NUL in state', { state: 'a\u0000b' }],
      ['a lone surrogate in nonce', { nonce: 'a\uD800b' }],
      ['a NUL deep inside claims', { claims: { id_token: { email: { essential: true, value: 'x\u0000y' } } } }],
      ['a NUL in a member name of claims', { claims: { userinfo: { 'em\u0000ail': null } } }],
      ['a lone surrogate in a resource array', { resource: ['https://api.example.com', 'https://x\uDC00.example'] }],
    ];
    const before = await stored();
    for (const [name, extra] of cases) {
      const jwt = await sign(extra);
      const par = await postForm(`${issuer}/par`, { request: jwt }, { clientId: rp.clientId, secret: rp.clientSecret });
      t.equal(par.status, 400, `/par, ${name}: 400`);
      t.equal(par.body.error, 'invalid_request_object', `/par, ${name}: invalid_request_object`);
      const u = new URL(`${issuer}/authorize`);
      u.searchParams.set('client_id', rp.clientId);
      u.searchParams.set('request', jwt);
      const res = await fetch(u, { redirect: 'manual' });
      const body = await res.text();
      t.ok(res.status < 500, `/authorize, ${name}: not a 5xx (${res.status})`);
      const where = res.headers.get('location') ?? body;
      t.match(where, /invalid_request_object/, `/authorize, ${name}: invalid_request_object`);
    }
    t.equal(await stored(), before, 'nothing was stored');
  });
}

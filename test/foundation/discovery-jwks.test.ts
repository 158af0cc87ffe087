import t from 'tap';
import { createRemoteJWKSet, jwtVerify, SignJWT } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

for (const backend of backends()) {
  t.test(`discovery and JWKS on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => env.close());
    const issuer = env.config.issuer;

    const res = await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { host: 'evil.example' } });
    t.equal(res.status, 200);
    const meta = (await res.json()) as Record<string, unknown>;
    t.equal(meta.issuer, issuer, 'issuer comes from config, never from Host');
    t.match(res.headers.get('cache-control'), /public/);
    // every advertised endpoint answers (not 404)
    for (const [k, v] of Object.entries(meta)) {
      if (!k.endsWith('_endpoint') && k !== 'jwks_uri') continue;
      t.ok(String(v).startsWith(issuer), `${k} is built from the issuer`);
      const r = await fetch(String(v), { method: k === 'jwks_uri' || k === 'authorization_endpoint' || k === 'userinfo_endpoint' || k === 'status_list_aggregation_endpoint' ? 'GET' : 'POST' });
      t.not(r.status, 404, `${k} answers`);
      await r.arrayBuffer();
    }
    const rfc8414 = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json();
    t.same(rfc8414, meta, 'RFC 8414 metadata is the same document');

    const jwksRes = await fetch(String(meta.jwks_uri));
    t.equal(jwksRes.headers.get('content-type'), 'application/jwk-set+json; charset=utf-8');
    t.match(jwksRes.headers.get('cache-control'), /^public, max-age=\d+$/);
    const etag = jwksRes.headers.get('etag');
    t.ok(etag);
    const jwks = (await jwksRes.json()) as { keys: Array<Record<string, unknown>> };
    // an active and a published next key per enabled algorithm
    t.same(jwks.keys.map((k) => k.alg).sort(), ['ES256', 'ES256', 'RS256', 'RS256']);
    for (const k of jwks.keys) {
      for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) t.notOk(priv in k, `no private member ${priv}`);
      t.ok(k.kid);
    }
    const notModified = await fetch(String(meta.jwks_uri), { headers: { 'if-none-match': etag! } });
    t.equal(notModified.status, 304);

    // a token signed with the active key verifies through jose's remote JWKS
    const key = env.rt.keystore.signingKey('ES256');
    const jwt = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(issuer).setExpirationTime('1m').sign(key.privateKey);
    const { payload, protectedHeader } = await jwtVerify(jwt, createRemoteJWKSet(new URL(String(meta.jwks_uri))), { issuer, algorithms: ['ES256'] });
    t.equal(payload.sub, 'x');
    t.equal(protectedHeader.kid, key.kid);

    // the database never holds a private key in plaintext
    const rows = await env.rt.db.selectFrom('signing_keys').selectAll().execute();
    t.equal(rows.length, 4);
    for (const r of rows) {
      t.notOk('d' in (r.public_jwk as object), 'public_jwk has no private part');
      t.match(r.private_sealed, /^v1\./);
      t.notMatch(r.private_sealed, /"d"/);
      t.equal(r.kek_id, env.rt.kek.id);
    }

    const health = await fetch(`${issuer}/healthz`);
    t.equal(health.status, 200);
    const ready = await fetch(`${issuer}/readyz`);
    t.equal(ready.status, 200);
    const notFound = await fetch(`${issuer}/nope`);
    t.equal(notFound.status, 404);
    t.same(await notFound.json(), { error: 'not_found', error_description: 'no such route' });
  });
}

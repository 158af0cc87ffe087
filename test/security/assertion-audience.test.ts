// Issue 17 item 7: a private_key_jwt assertion's `aud` must be exactly the issuer — a string, or an
// array whose only value is the issuer (draft-ietf-oauth-rfc7523bis, audience injection). Endpoint
// URLs, and arrays carrying other audiences, are refused at every endpoint that authenticates clients.
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, tempDir } from '../helpers/runtime.js';
import { cli } from '../helpers/fixtures.js';

t.teardown(dropCreatedDatabases);

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

for (const backend of backends()) {
  t.test(`assertion audience on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { env: { CLIENT_AUTH_FAILURES_PER_CLIENT: '1000', CLIENT_AUTH_FAILURES_PER_IP: '1000' } });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const keys = await generateKeyPair('ES256', { extractable: true });
    const jwksFile = path.join(tempDir(), 'jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256' }] }));
    const created = await cli(e.rt, ['clients', 'create', '--name', 'Keyed', '--auth-method', 'private_key_jwt', '--jwks', jwksFile, '--grant-types', 'client_credentials', '--scopes', 'jobs', '--audiences', 'https://api.example.com']);
    const clientId = created.client_id as string;
    const now = () => Math.floor(e.clock.now() / 1000);
    const assertion = (aud: string | string[]) =>
      new SignJWT({ iss: clientId, sub: clientId, aud, jti: crypto.randomUUID(), iat: now(), exp: now() + 60 }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(keys.privateKey);
    const call = async (endpoint: string, aud: string | string[]) => {
      const form: Record<string, string> = { client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(aud) };
      if (endpoint === 'token') Object.assign(form, { grant_type: 'client_credentials' });
      else form.token = 'x';
      const r = await e.app.inject({ method: 'POST', url: `/${endpoint}`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(form).toString() });
      return { status: r.statusCode, body: (r.body ? r.json() : {}) as Record<string, unknown> };
    };

    for (const endpoint of ['token', 'introspect', 'revoke']) {
      await t.test(`at /${endpoint}`, async (t) => {
        t.equal((await call(endpoint, issuer)).status, 200, 'aud = the issuer');
        t.equal((await call(endpoint, [issuer])).status, 200, 'aud = [the issuer]');
        for (const [what, aud] of [
          ['the token endpoint', `${issuer}/token`],
          ['the endpoint called', `${issuer}/${endpoint}`],
          ['[issuer, another server]', [issuer, 'https://other.example']],
          ['[issuer, the token endpoint]', [issuer, `${issuer}/token`]],
          ['[issuer, issuer]', [issuer, issuer]],
          ['the issuer with a trailing slash', `${issuer}/`],
          ['an empty array', []],
        ] as Array<[string, string | string[]]>) {
          const r = await call(endpoint, aud);
          t.equal(r.status, 401, `aud = ${what}: 401`);
          t.equal(r.body.error, 'invalid_client', `aud = ${what}: invalid_client`);
        }
      });
    }
  });
}

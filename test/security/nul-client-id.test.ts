// Issue 23, finding 6: a client id that Postgres cannot store (a NUL, a lone surrogate), decoded
// from the Basic header or read from an unverified client assertion's `sub`, is no client: 401
// invalid_client with WWW-Authenticate at every endpoint that authenticates clients — never a 500.
import t from 'tap';
import { SignJWT } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

const ENDPOINTS = ['/token', '/revoke', '/introspect', '/par'];
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

for (const backend of backends()) {
  t.test(`unstorable client ids on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create());
    t.teardown(() => e.close());
    const assertion = (sub: string) =>
      new SignJWT({ jti: 'j1' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(sub)
        .setSubject(sub)
        .setAudience(e.config.issuer)
        .setExpirationTime('1m')
        .sign(new TextEncoder().encode('x'.repeat(32)));

    const cases: Array<{ name: string; headers: Record<string, string>; body: Record<string, string> }> = [
      { name: 'a NUL in the Basic header', headers: { authorization: `Basic ${b64('ab\u0000c:s')}` }, body: {} },
      { name: '%00 inside the Basic header', headers: { authorization: `Basic ${b64('ab%00c:s')}` }, body: {} },
      { name: 'a lone surrogate, percent-encoded, inside the Basic header', headers: { authorization: `Basic ${b64('ab%ED%A0%80c:s')}` }, body: {} },
      { name: "a NUL in an unverified assertion's sub", headers: {}, body: { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion('ab\u0000c') } },
    ];
    for (const path of ENDPOINTS) {
      for (const c of cases) {
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
    }
  });
}

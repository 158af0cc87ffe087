// The admin API's signing-key operations: list, rotate (refused while the next key is too young,
// unless now=true), revoke (the big red button).
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient } from '../helpers/fixtures.js';
import { tokenRequest } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

for (const backend of backends()) {
  t.test(`admin keys API on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const admin = await createClient(e.rt, ['--name', 'ops', '--admin']);
    const tok = await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin' }, { clientId: admin.clientId, secret: admin.clientSecret });
    t.equal(tok.status, 200);
    const at = tok.body.access_token as string;
    const api = async (method: string, path: string, body?: unknown, token: string | null = at) => {
      const res = await fetch(`${issuer}${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    };
    const jwksKids = async () => ((await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);

    t.equal((await api('GET', '/admin/keys', undefined, null)).status, 401, 'no token');
    const list = await api('GET', '/admin/keys');
    t.equal(list.status, 200);
    const keys = list.body.keys as Array<{ kid: string; alg: string; state: string }>;
    const active = keys.find((k) => k.alg === 'ES256' && k.state === 'active')!;
    const next = keys.find((k) => k.alg === 'ES256' && k.state === 'next')!;
    t.ok(active && next, 'an active and a next ES256 key');

    const early = await api('POST', '/admin/keys/rotate', { alg: 'ES256' });
    t.equal(early.status, 409, 'the next key has not been published long enough');
    t.ok(Number(early.headers.get('retry-after')) > 0, 'Retry-After says how long');
    t.equal((await api('POST', '/admin/keys/rotate', { alg: 'HS256' })).status, 400, 'unknown algorithm');
    t.equal((await api('POST', '/admin/keys/rotate', { bogus: 1 })).status, 400, 'unknown field');

    e.clock.advance(e.config.jwksMaxAge + 120);
    const rotated = await api('POST', '/admin/keys/rotate', { alg: 'ES256' });
    t.equal(rotated.status, 200);
    t.equal(rotated.body.activated, next.kid);
    t.equal(rotated.body.retired, active.kid);
    t.equal(e.rt.keystore.signingKey('ES256').kid, next.kid, 'this replica signs with the promoted key at once');
    const kids = await jwksKids();
    t.ok(kids.includes(active.kid), 'the retired key stays published');
    t.ok(kids.includes(rotated.body.published_next as string), 'a new next key is published');

    // the big red button on the active key
    const cc = await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin' }, { clientId: admin.clientId, secret: admin.clientSecret });
    const revoked = await api('POST', `/admin/keys/${next.kid}/revoke`, { reason: 'test' }, cc.body.access_token as string);
    t.equal(revoked.status, 200);
    t.notOk((await jwksKids()).includes(next.kid), 'gone from the JWKS at once');
    t.not(e.rt.keystore.signingKey('ES256').kid, next.kid, 'another key signs now');
    // the admin token signed by the revoked key no longer works here
    const refused = await api('GET', '/admin/keys', undefined, cc.body.access_token as string);
    t.equal(refused.status, 401, 'tokens of the revoked key fail at our endpoints');
    t.equal((await api('POST', '/admin/keys/nope/revoke', {})).status, 404, 'unknown kid');
    const audit = await e.rt.db.selectFrom('audit_events').select(['type', 'actor']).where('type', 'in', ['key.rotated', 'key.revoked']).execute();
    t.same(audit.map((a) => a.type).sort(), ['key.revoked', 'key.rotated']);
  });
}

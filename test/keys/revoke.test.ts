// The big red button: `keys revoke <kid>` takes a key out of the JWKS and out of every Latchkey
// endpoint at once; the next key signs in its place, and the event is audited.
import t from 'tap';
import { createRemoteJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { signAccessToken, verifyAccessToken } from '../../src/tokens/access-token.js';
import { InvalidToken } from '../../src/core/errors.js';
import { userinfoAudience } from '../../src/protocol/audience.js';

t.teardown(dropCreatedDatabases);

const failsWithInvalidToken = (p: Promise<unknown>): Promise<boolean> =>
  p.then(
    () => false,
    (err: unknown) => err instanceof InvalidToken && /unknown signing key/.test((err as Error).message),
  );

const input = { sub: 'u1', clientId: 'c1', scope: ['openid'], aud: ['https://api.example'], statusIdx: 0 };

for (const backend of backends()) {
  t.test(`keys revoke on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => env.close());
    const { rt, config } = env;
    const jwksUri = `${config.issuer}/.well-known/jwks.json`;
    const kids = async () => ((await (await fetch(jwksUri)).json()) as JSONWebKeySet).keys.map((k) => k.kid);
    const cli = async (...argv: string[]) => {
      const r = await runCommand([...argv, '--json'], cliContextFor(rt), undefined);
      return { ...r, out: r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
    };

    const active = rt.keystore.activeKey('ES256')!.kid;
    const next = rt.keystore.list().find((k) => k.alg === 'ES256' && k.state === 'next')!.kid;
    const old = await signAccessToken(rt, input);
    t.equal(old.kid, active);
    await verifyAccessToken(rt, old.token);

    // a user's token for /userinfo, and a confidential client that may introspect it
    const userId = (JSON.parse((await runCommand(['users', 'create', '--email', 'k2@example.com', '--password-stdin', '--json'], cliContextFor(rt), 'correct horse battery staple\n')).stdout) as { id: string }).id;
    const client = JSON.parse((await runCommand(['clients', 'create', '--name', 'rs', '--grant-types', 'client_credentials', '--json'], cliContextFor(rt), undefined)).stdout) as { client_id: string; client_secret: string };
    const userToken = await signAccessToken(rt, { sub: userId, clientId: client.client_id, scope: ['openid'], aud: [userinfoAudience(config.issuer)], statusIdx: 0 });
    const userinfo = (token: string) => fetch(`${config.issuer}/userinfo`, { headers: { authorization: `Bearer ${token}` } });
    const introspect = async (token: string) =>
      (await (
        await fetch(`${config.issuer}/introspect`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token }),
        })
      ).json()) as { active: boolean };
    t.equal((await userinfo(userToken.token)).status, 200, '/userinfo accepts the token before');
    t.equal((await introspect(userToken.token)).active, true, '/introspect says active before');
    const etagBefore = (await fetch(jwksUri)).headers.get('etag');

    const r = await cli('keys', 'revoke', active, '--reason', 'key material leaked');
    t.equal(r.code, 0, r.stderr);
    t.equal(r.out!.previous_state, 'active');
    t.equal(r.out!.activated, next, 'the published next key became active at once');
    t.type(r.out!.published_next, 'string', 'a new next key was published');
    t.match(r.out!.warning, /cache risk was accepted|reject its tokens/, 'says the new key may be unknown to caches');
    t.match(r.out!.resource_servers_may_accept_until, /^\d{4}-/, 'states the revocation window at resource servers');

    // at once, without waiting for anything
    const now = await kids();
    t.notOk(now.includes(active), 'the revoked kid left the JWKS');
    t.ok(now.includes(next) && now.includes(r.out!.published_next as string));
    const etagAfter = (await fetch(jwksUri)).headers.get('etag');
    t.not(etagAfter, etagBefore, 'new ETag');
    t.equal((await fetch(jwksUri, { headers: { 'if-none-match': etagBefore! } })).status, 200, 'the old ETag no longer gets a 304');
    t.equal((await fetch(jwksUri, { headers: { 'if-none-match': etagAfter! } })).status, 304);

    // our endpoints verify through verifyAccessToken: the revoked key's tokens fail
    t.ok(await failsWithInvalidToken(verifyAccessToken(rt, old.token)), 'verifyAccessToken rejects the revoked key\'s token');
    // a standard library with our JWKS rejects it too (a fresh fetch, as after its cache expired)
    await t.rejects(jwtVerify(old.token, createRemoteJWKSet(new URL(jwksUri)), { issuer: config.issuer, algorithms: ['ES256'] }));
    const ui = await userinfo(userToken.token);
    t.equal(ui.status, 401, '/userinfo rejects the revoked key\'s token');
    t.match(ui.headers.get('www-authenticate'), /invalid_token/);
    t.same(await introspect(userToken.token), { active: false }, '/introspect says inactive');
    const fresh = await signAccessToken(rt, input);
    t.equal(fresh.kid, next, 'new tokens carry another kid');
    const freshUser = await signAccessToken(rt, { sub: userId, clientId: client.client_id, scope: ['openid'], aud: [userinfoAudience(config.issuer)], statusIdx: 0 });
    t.equal((await userinfo(freshUser.token)).status, 200, 'a new token works at /userinfo');
    await verifyAccessToken(rt, fresh.token);
    const { protectedHeader } = await jwtVerify(fresh.token, createRemoteJWKSet(new URL(jwksUri)), { issuer: config.issuer, algorithms: ['ES256'] });
    t.equal(protectedHeader.kid, next);

    const row = await rt.db.selectFrom('signing_keys').selectAll().where('kid', '=', active).executeTakeFirstOrThrow();
    t.equal(row.state, 'revoked');
    t.ok(row.revoked_at);
    t.equal(row.private_sealed, '', 'the private part of a revoked key is destroyed');
    const audit = await rt.db.selectFrom('audit_events').selectAll().where('type', '=', 'key.revoked').execute();
    t.equal(audit.length, 1, 'an audit event');
    t.equal(audit[0]!.actor, 'cli');
    t.match(audit[0]!.details, { kid: active, alg: 'ES256', previous_state: 'active', reason: 'key material leaked', activated: next });

    // revoking a next key publishes another; a retired one just leaves
    const next2 = r.out!.published_next as string;
    const r2 = await cli('keys', 'revoke', next2);
    t.equal(r2.code, 0, r2.stderr);
    t.equal(r2.out!.activated, null);
    t.type(r2.out!.published_next, 'string');
    t.notOk((await kids()).includes(next2));
    t.equal(rt.keystore.signingKey('ES256').kid, next, 'the active key is untouched');

    const rot = await cli('keys', 'rotate', '--now');
    t.equal(rot.code, 0, rot.stderr);
    const retired = rot.out!.retired as string;
    t.equal(retired, next);
    const r3 = await cli('keys', 'revoke', retired);
    t.equal(r3.code, 0, r3.stderr);
    t.equal(r3.out!.previous_state, 'retired');
    t.equal(r3.out!.published_next, null);
    t.notOk((await kids()).includes(retired));
    t.ok(await failsWithInvalidToken(verifyAccessToken(rt, fresh.token)), 'tokens of a revoked retired key fail too');

    // refusals
    const again = await cli('keys', 'revoke', active);
    t.equal(again.code, 1);
    t.match(again.stderr, /already revoked/);
    const unknown = await cli('keys', 'revoke', 'no-such-kid');
    t.equal(unknown.code, 1);
    t.match(unknown.stderr, /no such key/);
    const missing = await runCommand(['keys', 'revoke'], cliContextFor(rt), undefined);
    t.equal(missing.code, 2);

    // the surviving keys still sign and verify, and a revoked key never comes back by import
    t.ok(rt.keystore.hasSigningKey('ES256') && rt.keystore.hasSigningKey('RS256'));
    t.equal((await rt.db.selectFrom('signing_keys').select('kid').where('state', '=', 'active').execute()).length, 2);
  });
}

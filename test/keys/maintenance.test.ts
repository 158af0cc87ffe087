// The maintenance step and the timing rules: a missing next key is published, a rotation waits for
// JWKS_MAX_AGE + margin of publication (to the second), scheduled rotation waits KEY_ROTATION_DAYS
// and for a seasoned next key, and the keystore itself never signs with a key published too recently.
import crypto from 'node:crypto';
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { keyMaintenanceStep } from '../../src/keys/maintenance.js';
import { importKey } from '../../src/keys/import.js';
import { KeyLifecycleError, listKeys, rotateKeys } from '../../src/keys/rotation.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { signAccessToken, verifyAccessToken } from '../../src/tokens/access-token.js';

t.teardown(dropCreatedDatabases);

const input = { sub: 'u1', clientId: 'c1', scope: ['openid'], aud: ['https://api.example'], statusIdx: 0 };
const tooEarly = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => (err instanceof KeyLifecycleError && err.code === 'too_early' ? err : Promise.reject(err)),
  );

for (const backend of backends()) {
  t.test(`key maintenance and timing on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { env: { KEY_ROTATION_DAYS: '2', JWKS_MAX_AGE: '300', KEY_PUBLISH_MARGIN_SECONDS: '60' } });
    t.teardown(() => env.close());
    const { rt, clock, app } = env;
    const publish = 360;

    // a database from before the lifecycle: active keys only
    await rt.db.deleteFrom('signing_keys').where('state', '=', 'next').execute();
    await rt.keystore.reload();
    const created = await keyMaintenanceStep(rt);
    t.same(created.map((a) => `${a.action} ${a.alg}`).sort(), ['created-next ES256', 'created-next RS256'], 'the missing next keys are published');
    t.same((await keyMaintenanceStep(rt)).length, 0, 'then nothing to do');
    const next = rt.keystore.list().find((k) => k.alg === 'ES256' && k.state === 'next')!;
    t.ok(JSON.parse(rt.keystore.jwksBody).keys.some((k: { kid: string }) => k.kid === next.kid), 'published in the JWKS');
    const listed = (await listKeys(rt)).find((k) => k.kid === next.kid)!;
    t.equal(listed.promotable_at, new Date(next.publishedAt.getTime() + publish * 1000).toISOString(), '`keys list` says when it may be promoted');

    // a rotation refuses a next key younger than JWKS_MAX_AGE + margin, to the second
    let err = await tooEarly(rotateKeys(rt));
    t.equal(err?.retryAfterSeconds, publish);
    t.match(err?.message, /published for 0 s; it may sign only after 360 s .*retry in 360 s, or pass --now/);
    clock.advance(publish - 1);
    err = await tooEarly(rotateKeys(rt));
    t.equal(err?.retryAfterSeconds, 1, 'one second short');
    const cliRefusal = await runCommand(['keys', 'rotate'], cliContextFor(rt), undefined);
    t.equal(cliRefusal.code, 1);
    t.match(cliRefusal.stderr, /^error: the next ES256 key .* retry in 1 s, or pass --now/);
    clock.advance(1);
    const r = await rotateKeys(rt);
    t.equal(r.activated, next.kid);
    t.equal(r.promoted_early, false);
    t.notOk(r.warning);
    t.equal(r.retired_key_expires_at, new Date(clock.now() + (3600 + 30) * 1000).toISOString(), 'retired until the longest token lifetime + leeway');
    await rt.keystore.reload();
    t.equal((await signAccessToken(rt, input)).kid, next.kid);

    // scheduled rotation: not before KEY_ROTATION_DAYS since activation
    const activatedAt = rt.keystore.activeKey('ES256')!.activatedAt!.getTime();
    clock.set(activatedAt + 2 * 86400 * 1000 - 1000);
    t.notOk((await keyMaintenanceStep(rt)).some((a) => a.action === 'rotated' && a.alg === 'ES256'), 'not a second early');
    // an imported key takes the next slot just before: the due rotation waits until it is seasoned
    const pem = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    const imp = await importKey(rt, { pem, actor: 'test' });
    t.equal(imp.state, 'next');
    clock.advance(1);
    let actions = await keyMaintenanceStep(rt);
    t.notOk(actions.some((a) => a.action === 'rotated' && a.alg === 'ES256'), 'due, but the imported next key is too young');
    clock.advance(publish - 1);
    actions = await keyMaintenanceStep(rt);
    const rot = actions.find((a) => a.action === 'rotated' && a.alg === 'ES256');
    t.ok(rot, 'rotated once the next key was published long enough');
    t.equal(rot?.kid, imp.kid);
    t.equal((await signAccessToken(rt, input)).kid, imp.kid, 'the imported key signs');
    t.ok((await listKeys(rt)).some((k) => k.alg === 'ES256' && k.state === 'next'), 'and a new next key is published');

    // a replica whose clock lags the one that rotated keeps signing with the key just retired
    // (for at most the leeway after its retirement, which the retired key's expiry covers)
    clock.advance(publish);
    const nowMs = clock.now();
    const r2 = await rotateKeys(rt);
    await rt.keystore.reload();
    clock.set(nowMs - 20 * 1000);
    const lagging = await signAccessToken(rt, input);
    t.equal(lagging.kid, r2.retired, 'a lagging clock signs with the key just retired');
    const retiredRow = (await listKeys(rt)).find((k) => k.kid === r2.retired)!;
    t.ok(lagging.exp * 1000 <= Date.parse(retiredRow.expires_at!), 'its token expires before the retired key leaves the JWKS');
    await verifyAccessToken(rt, lagging.token);
    clock.set(nowMs);
    t.equal((await signAccessToken(rt, input)).kid, r2.activated);

    // the keystore refuses an active key that was not published long enough (a promotion that
    // broke the rules, e.g. by hand in SQL), and readiness says so
    const young = (await listKeys(rt)).find((k) => k.alg === 'ES256' && k.state === 'next')!;
    clock.advance(120); // past the leeway after the last retirement: no fallback either
    const at = new Date(clock.now());
    await rt.db.transaction().execute(async (trx) => {
      await trx.updateTable('signing_keys').set({ state: 'retired', retired_at: new Date(at.getTime() - 3600 * 1000), expires_at: new Date(at.getTime() + 3600 * 1000) }).where('alg', '=', 'ES256').where('state', '=', 'active').execute();
      await trx.updateTable('signing_keys').set({ state: 'active', activated_at: at, promoted_early: false }).where('kid', '=', young.kid).execute();
    });
    await rt.keystore.reload();
    t.notOk(rt.keystore.hasSigningKey('ES256'));
    t.throws(() => rt.keystore.signingKey('ES256'), { message: /not been published long enough/ });
    const ready = await app.inject('/readyz');
    t.equal(ready.statusCode, 503);
    t.match(ready.json(), { checks: { signing_key: 'failing' } });
    clock.set(Date.parse(young.published_at) + publish * 1000);
    t.ok(rt.keystore.hasSigningKey('ES256'), 'signs once it has been published long enough');
    t.equal((await app.inject('/readyz')).statusCode, 200);

    // --now: promotes at once and says it accepts the cache risk
    const forced = await runCommand(['keys', 'rotate', '--now', '--alg', 'RS256', '--json'], cliContextFor(rt), undefined);
    t.equal(forced.code, 0, forced.stderr);
    const f = JSON.parse(forced.stdout) as Record<string, unknown>;
    t.equal(f.alg, 'RS256');
    t.equal(f.promoted_early, false, 'the RS256 next key had been published long enough anyway');
    const forced2 = await runCommand(['keys', 'rotate', '--now', '--alg', 'RS256'], cliContextFor(rt), undefined);
    t.equal(forced2.code, 0, forced2.stderr);
    t.match(forced2.stdout, /promoted_early: true/);
    t.match(forced2.stdout, /warning: key \S+ signs after only 0 s in the JWKS .* this cache risk was accepted/);
    t.equal(rt.keystore.signingKey('RS256').kid, rt.keystore.activeKey('RS256')!.kid, 'a key promoted with --now signs at once');
    const bad = await runCommand(['keys', 'rotate', '--alg', 'PS256'], cliContextFor(rt), undefined);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /PS256 is not enabled/);
    const audit = await rt.db.selectFrom('audit_events').selectAll().where('type', '=', 'key.rotated').execute();
    t.ok(audit.some((a) => a.actor === 'system' && (a.details as { scheduled?: boolean }).scheduled), 'scheduled rotations are audited');
    t.ok(audit.some((a) => a.actor === 'cli' && (a.details as { forced?: boolean }).forced), 'forced ones too');
  });
}

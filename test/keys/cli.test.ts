// The `latchkey keys …` commands through the real binary, against Postgres, with a server (in
// process) following the changes they make; then `keys rewrap` and the built server refusing the
// old KEK.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { dropCreatedDatabases, hasPostgres, postgres, POSTGRES_SKIP_REASON } from '../helpers/backends.js';
import { runCli, startServer, waitFor } from '../helpers/process.js';
import { createTestEnv, freePort, tempDir, TEST_KEK } from '../helpers/runtime.js';
import { signAccessToken, verifyAccessToken } from '../../src/tokens/access-token.js';
import { KekMismatch } from '../../src/keys/kek.js';

t.teardown(dropCreatedDatabases);

interface KeyRow {
  kid: string;
  alg: string;
  state: string;
  published_at: string;
  activated_at: string | null;
  promotable_at: string | null;
}

t.test('keys commands through the latchkey binary', { skip: hasPostgres ? false : POSTGRES_SKIP_REASON }, async (t) => {
  const url = await postgres.create();
  const cwd = tempDir('latchkey-keys-cwd-');
  const cliEnv = { DATABASE_URL: url, LATCHKEY_KEK: TEST_KEK, CWD: cwd };
  const cli = (...args: string[]) => runCli(args, cliEnv);
  const json = async <T>(...args: string[]): Promise<T> => {
    const r = await cli(...args, '--json');
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.code} ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  const env = await createTestEnv(url, { listen: true });
  t.teardown(() => env.close());
  const { rt } = env;
  const jwksUri = `${env.config.issuer}/.well-known/jwks.json`;
  const served = async () => ((await (await fetch(jwksUri)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
  const input = { sub: 'u1', clientId: 'c1', scope: ['openid'], aud: ['https://api.example'], statusIdx: 0 };

  // list
  const list = await json<KeyRow[]>('keys', 'list');
  t.same(list.map((k) => `${k.alg} ${k.state}`).sort(), ['ES256 active', 'ES256 next', 'RS256 active', 'RS256 next']);
  for (const k of list) t.match(k, { kid: /^[\w-]{43}$/, published_at: /^\d{4}-\d\d-\d\dT/ });
  const text = await cli('keys', 'list');
  t.equal(text.code, 0);
  t.match(text.stdout, /kid: \S+\nalg: ES256\nstate: active\ncreated_at: /);
  t.match(text.stdout, /promotable_at: \d{4}-/);

  // rotate: refused while the next key is young, with the time to wait
  const early = await cli('keys', 'rotate');
  t.equal(early.code, 1);
  t.match(early.stderr, /^error: the next ES256 key \S+ has been published for \d+ s; it may sign only after 360 s .*retry in \d+ s, or pass --now/);
  t.equal(early.stdout, '');
  // once it has been published long enough (as if an hour had passed), it is promoted
  await rt.db.updateTable('signing_keys').set((eb) => ({ published_at: eb.cast<Date>(eb.val(new Date(Date.now() - 3600 * 1000)), 'timestamptz') })).where('state', '=', 'next').execute();
  const oldActive = list.find((k) => k.alg === 'ES256' && k.state === 'active')!.kid;
  const oldToken = await signAccessToken(rt, input);
  t.equal(oldToken.kid, oldActive);
  const rot = await json<Record<string, string | boolean>>('keys', 'rotate');
  t.equal(rot.retired, oldActive);
  t.equal(rot.promoted_early, false);
  await waitFor(async () => (rt.keystore.activeKey('ES256')?.kid === rot.activated ? true : undefined), 20000, 50);
  t.pass('the running server follows the rotation');
  t.ok((await served()).includes(rot.published_next as string), 'and publishes the new next key');
  t.ok((await served()).includes(oldActive), 'the retired key stays published');

  // --now: promotes a next key published seconds ago, and says what that risks
  const forced = await cli('keys', 'rotate', '--now');
  t.equal(forced.code, 0, forced.stderr);
  t.match(forced.stdout, /promoted_early: true/);
  t.match(forced.stdout, /warning: key \S+ signs after only \d+ s in the JWKS .*resource servers that cached the JWKS before it was published reject its tokens until their copy expires \(up to 300 s\); this cache risk was accepted/);
  const rs = await json<Record<string, string>>('keys', 'rotate', '--alg', 'RS256');
  t.equal(rs.alg, 'RS256');

  // revoke: out of the server's JWKS (NOTIFY), its tokens refused
  const revoked = await json<Record<string, string>>('keys', 'revoke', oldActive, '--reason', 'leaked');
  t.equal(revoked.previous_state, 'retired');
  await waitFor(async () => (!(await served()).includes(oldActive) ? true : undefined), 20000, 50);
  t.pass('the revoked kid left the running server\'s JWKS');
  const refused = await verifyAccessToken(rt, oldToken.token).then(
    () => false,
    () => true,
  );
  t.ok(refused, 'its tokens fail verification');
  const activeNow = (await json<KeyRow[]>('keys', 'list')).find((k) => k.alg === 'ES256' && k.state === 'active')!.kid;
  const rev2 = await json<Record<string, string>>('keys', 'revoke', activeNow);
  t.equal(rev2.previous_state, 'active');
  await waitFor(async () => (rt.keystore.activeKey('ES256')?.kid === rev2.activated ? true : undefined), 20000, 50);
  t.not((await signAccessToken(rt, input)).kid, activeNow, 'new tokens carry another kid');
  const again = await cli('keys', 'revoke', activeNow);
  t.equal(again.code, 1);
  t.match(again.stderr, /already revoked/);
  t.equal((await cli('keys', 'revoke', 'nope')).code, 1);
  t.equal((await cli('keys', 'revoke')).code, 2, 'a missing kid is a usage error');
  const badAlg = await cli('keys', 'rotate', '--alg', 'HS256');
  t.equal(badAlg.code, 1);
  t.match(badAlg.stderr, /unsupported algorithm HS256/);

  // import: a PEM and a JWK file
  const dir = tempDir();
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  fs.writeFileSync(path.join(dir, 'ec.pem'), ec.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  const imp = await json<Record<string, string>>('keys', 'import', '--pem', path.join(dir, 'ec.pem'));
  t.equal(imp.alg, 'ES256');
  t.equal(imp.state, 'next');
  await waitFor(async () => ((await served()).includes(imp.kid!) ? true : undefined), 20000, 50);
  t.pass('the imported key is published by the running server');
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(dir, 'rsa.json'), JSON.stringify(rsa.privateKey.export({ format: 'jwk' })));
  const ps = await cli('keys', 'import', '--jwk', path.join(dir, 'rsa.json'), '--alg', 'PS256');
  t.equal(ps.code, 1);
  t.match(ps.stderr, /PS256 is not enabled/);
  const rsImp = await json<Record<string, string>>('keys', 'import', '--jwk', path.join(dir, 'rsa.json'), '--alg', 'RS256');
  t.equal(rsImp.alg, 'RS256');
  const both = await cli('keys', 'import', '--pem', 'a', '--jwk', 'b');
  t.equal(both.code, 1);
  t.match(both.stderr, /exactly one of/);

  const audit = await rt.db.selectFrom('audit_events').select(['type', 'actor']).where('type', 'like', 'key%').execute();
  t.ok(audit.filter((a) => a.type === 'key.revoked').length === 2 && audit.every((a) => a.actor === 'cli'), 'revocations (and the rest) audited as the CLI');
  const tokenBefore = await signAccessToken(rt, input);
  const issuer = env.config.issuer;

  // rewrap: needs the new KEK; afterwards only the new KEK opens the keys (the server started with
  // the old KEK keeps running meanwhile, as a replica not yet restarted would)
  const missing = await cli('keys', 'rewrap');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /LATCHKEY_NEW_KEK: is required/);
  const newKek = crypto.randomBytes(32).toString('base64');
  const kekFile = path.join(dir, 'new-kek');
  fs.writeFileSync(kekFile, `${newKek}\n`, { mode: 0o600 });
  const wrapped = await runCli(['keys', 'rewrap', '--json'], { ...cliEnv, LATCHKEY_NEW_KEK_FILE: kekFile });
  t.equal(wrapped.code, 0, wrapped.stderr);
  const w = JSON.parse(wrapped.stdout) as Record<string, number | string>;
  t.equal(w.server_secrets, 5, 'cookie, csrf, authorization-code, dpop-nonce and refresh-token secrets');
  t.ok((w.signing_keys as number) >= 6);
  const stale = await cli('keys', 'rotate', '--now');
  t.equal(stale.code, 1, 'the old KEK can no longer add keys');
  t.match(stale.stderr, /sealed under another KEK/);
  const twice = await runCli(['keys', 'rewrap'], { ...cliEnv, LATCHKEY_NEW_KEK: newKek });
  t.equal(twice.code, 1, 'a second rewrap with the old KEK fails, changing nothing');

  const oldKekStart = await createTestEnv(url, {}).then(
    (e) => e.close().then(() => undefined),
    (e: unknown) => e,
  );
  t.ok(oldKekStart instanceof KekMismatch, 'a runtime with the old KEK fails to start with KekMismatch');
  const server = await startServer({ DATABASE_URL: url, LATCHKEY_KEK: TEST_KEK, PORT: String(await freePort()), CWD: cwd }, { waitReady: false });
  t.teardown(() => server.stop('SIGKILL'));
  await waitFor(async () => (server.proc.exitCode !== null ? true : undefined), 60000, 50);
  t.equal(server.proc.exitCode, 1, 'the built server refuses to start with the old KEK');
  t.match(server.output(), /KEK/);

  const fresh = await createTestEnv(url, { env: { LATCHKEY_KEK: newKek, ISSUER: issuer } });
  t.teardown(() => fresh.close());
  await verifyAccessToken({ ...fresh.rt, clock: { now: () => tokenBefore.iat * 1000 } }, tokenBefore.token);
  t.pass('tokens signed before the rewrap verify under the new KEK');
  const after = await runCli(['keys', 'rotate', '--now', '--json'], { ...cliEnv, LATCHKEY_KEK: newKek });
  t.equal(after.code, 0, after.stderr);
  const newActive = (JSON.parse(after.stdout) as { activated: string }).activated;
  await waitFor(async () => (fresh.rt.keystore.activeKey('ES256')?.kid === newActive ? true : undefined), 20000, 50);
  t.equal((await signAccessToken(fresh.rt, input)).kid, newActive, 'keys work under the new KEK');

  // the replica still on the old KEK follows the changes (its JWKS is current) but cannot open a key
  // created under the new KEK: once that key is active (and past the leeway after the retirement of
  // the key it replaced) the replica stops signing, and says so
  const after2 = await runCli(['keys', 'rotate', '--now', '--json'], { ...cliEnv, LATCHKEY_KEK: newKek });
  t.equal(after2.code, 0, after2.stderr);
  const newActive2 = (JSON.parse(after2.stdout) as { activated: string }).activated;
  t.equal(newActive2, (JSON.parse(after.stdout) as { published_next: string }).published_next, 'a key created after the rewrap');
  await waitFor(async () => (rt.keystore.activeKey('ES256')?.kid === newActive2 ? true : undefined), 20000, 50);
  t.pass('the stale replica follows');
  t.ok((await served()).includes(newActive2), 'and publishes the new key');
  env.clock.set(Date.now() + 120 * 1000);
  t.notOk(rt.keystore.hasSigningKey('ES256'), 'and does not sign with a stale key');
  t.equal((await fetch(`${issuer}/readyz`)).status, 503, 'readiness fails until it is restarted with the new KEK');
  await waitFor(async () => (/KEK cannot open the private part/.test(env.logs()) ? true : undefined), 20000, 50);
  t.pass('the reason is logged');
});

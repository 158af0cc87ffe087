// Private keys at rest: never in plaintext in the database; a wrong KEK stops the start with
// KekMismatch; `rewrap` moves every key (and server secret) to a new KEK in one transaction, after
// which only the new KEK opens them.
import crypto from 'node:crypto';
import t from 'tap';
import { sql, type Kysely } from 'kysely';
import { SignJWT } from 'jose';
import { backends, dropCreatedDatabases, type Backend } from '../helpers/backends.js';
import { createTestEnv, tempDir, TEST_KEK } from '../helpers/runtime.js';
import { createDb } from '../../src/db/create-db.js';
import { KekMismatch, kekFromBytes } from '../../src/keys/kek.js';
import { openPrivateJwk } from '../../src/keys/keystore.js';
import { rewrapKeys } from '../../src/keys/rewrap.js';
import { revokeKey, rotateKeys } from '../../src/keys/rotation.js';
import { signAccessToken, verifyAccessToken } from '../../src/tokens/access-token.js';
import { systemClock } from '../../src/core/clock.js';

t.teardown(dropCreatedDatabases);

const input = { sub: 'u1', clientId: 'c1', scope: ['openid'], aud: ['https://api.example'], statusIdx: 0 };
const kekOf = (b64: string) => kekFromBytes(Buffer.from(b64, 'base64'));

/** A database that outlives one runtime: PGlite on disk, or a Postgres database. */
async function persistent(backend: Backend): Promise<{ url: string; env: Record<string, string> }> {
  if (backend.name === 'pglite') return { url: '', env: { DATA_DIR: tempDir() } };
  return { url: await backend.create(), env: {} };
}

/** Every row of every table of ours, as text. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function dumpAll(db: Kysely<any>): Promise<string> {
  const tables = await sql<{ table_name: string }>`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`.execute(db);
  let out = '';
  for (const { table_name } of tables.rows) {
    const rows = await sql<{ j: string }>`SELECT row_to_json(t)::text AS j FROM ${sql.table(table_name)} t`.execute(db);
    out += rows.rows.map((r) => r.j).join('\n');
  }
  return out;
}

for (const backend of backends()) {
  t.test(`private keys at rest and rewrap on ${backend.name}`, async (t) => {
    const { url, env: extra } = await persistent(backend);
    const oldKek = kekOf(TEST_KEK);
    const newKekB64 = crypto.randomBytes(32).toString('base64');
    const newKek = kekOf(newKekB64);

    // keys in every state, and the private members of each (read through the KEK)
    const env1 = await createTestEnv(url, { env: extra });
    const secrets: string[] = [];
    const collect = async () => {
      for (const row of await env1.rt.db.selectFrom('signing_keys').selectAll().where('private_sealed', '!=', '').execute()) {
        const jwk = openPrivateJwk(oldKek, row);
        for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const) if (typeof jwk[m] === 'string') secrets.push(jwk[m]!);
      }
    };
    await collect();
    await rotateKeys(env1.rt, { now: true });
    await collect();
    const toRevoke = env1.rt.keystore.list().find((k) => k.state === 'next' && k.alg === 'ES256')!.kid;
    await revokeKey(env1.rt, toRevoke, { actor: 'test' });
    await env1.rt.keystore.reload();
    const before = await signAccessToken(env1.rt, input);
    const cookieSecret = env1.rt.cookieSecret;
    const states = new Set((await env1.rt.db.selectFrom('signing_keys').select('state').execute()).map((r) => r.state));
    t.same([...states].sort(), ['active', 'next', 'retired', 'revoked']);

    t.ok(secrets.length >= 10, `collected ${secrets.length} private members`);
    const dump = await dumpAll(env1.rt.db);
    for (const s of new Set(secrets)) t.notOk(dump.includes(s), 'no private key member appears anywhere in the database');
    t.notMatch(dump, /"d"\s*:/, 'no JWK "d" member in any row');
    for (const row of await env1.rt.db.selectFrom('signing_keys').selectAll().execute()) {
      if (row.state === 'revoked') t.equal(row.private_sealed, '');
      else t.match(row.private_sealed, /^v1\.[\w-]+\.[\w-]+\.[\w-]+$/, 'sealed');
    }
    await env1.close();

    // a wrong KEK stops the start, before anything is written
    const wrong = crypto.randomBytes(32).toString('base64');
    const count = async () => {
      const dbh = await createDb({ databaseUrl: url || undefined, dataDir: extra.DATA_DIR ?? tempDir() });
      try {
        return (await dbh.db.selectFrom('signing_keys').select('kid').execute()).length;
      } finally {
        await dbh.close();
      }
    };
    const rowsBefore = await count();
    const err = await createTestEnv(url, { env: { ...extra, LATCHKEY_KEK: wrong } }).then(
      (e) => e.close().then(() => undefined),
      (e: unknown) => e,
    );
    t.ok(err instanceof KekMismatch, 'KekMismatch');
    t.match((err as Error).message, /another KEK/);
    t.equal(await count(), rowsBefore, 'nothing was written');

    // rewrap with the wrong "current" KEK: refused, nothing changed
    {
      const dbh = await createDb({ databaseUrl: url || undefined, dataDir: extra.DATA_DIR ?? tempDir() });
      const bad = await rewrapKeys({ db: dbh.db, clock: systemClock, oldKek: kekOf(wrong), newKek }).catch((e: unknown) => e);
      t.ok(bad instanceof KekMismatch, 'rewrap needs the KEK that sealed the keys');
      const ids = new Set((await dbh.db.selectFrom('signing_keys').select('kek_id').execute()).map((r) => r.kek_id));
      t.same([...ids], [oldKek.id], 'all rows still under the old KEK');
      const same = await rewrapKeys({ db: dbh.db, clock: systemClock, oldKek, newKek: oldKek }).catch((e: unknown) => e);
      t.match((same as Error).message, /new KEK is the KEK in use/);

      const r = await rewrapKeys({ db: dbh.db, clock: systemClock, oldKek, newKek, actor: 'test' });
      t.equal(r.signing_keys, 5, 'ES256 active, next and retired, RS256 active and next (the revoked key has no private part)');
      t.equal(r.server_secrets, 5, 'cookie, csrf, authorization-code, dpop-nonce and refresh-token secrets');
      t.equal(r.to_kek_id, newKek.id);
      const after = await dbh.db.selectFrom('signing_keys').selectAll().execute();
      for (const row of after) {
        t.equal(row.kek_id, newKek.id);
        if (row.private_sealed) {
          t.throws(() => openPrivateJwk(oldKek, row), { message: /cannot decrypt/ }, 'the old KEK no longer opens it');
          t.ok(openPrivateJwk(newKek, row).d, 'the new KEK does');
        }
      }
      const audit = await dbh.db.selectFrom('audit_events').selectAll().where('type', '=', 'keys.rewrapped').execute();
      t.equal(audit.length, 1);
      await dbh.close();
    }

    // the old KEK no longer starts; the new one does, with every key and secret usable
    const stale = await createTestEnv(url, { env: { ...extra, LATCHKEY_KEK: TEST_KEK } }).then(
      (e) => e.close().then(() => undefined),
      (e: unknown) => e,
    );
    t.ok(stale instanceof KekMismatch, 'a runtime with the old KEK fails to start with KekMismatch');

    const env2 = await createTestEnv(url, { env: { ...extra, LATCHKEY_KEK: newKekB64 } });
    t.teardown(() => env2.close());
    t.ok(env2.rt.cookieSecret.equals(cookieSecret), 'server secrets survived the rewrap');
    t.equal((await verifyAccessToken({ ...env2.rt, clock: { now: () => before.iat * 1000 } }, before.token)).header.kid, before.kid, 'tokens signed before still verify');
    for (const alg of ['ES256', 'RS256'] as const) {
      const k = env2.rt.keystore.signingKey(alg);
      await new SignJWT({}).setProtectedHeader({ alg, kid: k.kid }).sign(k.privateKey);
    }
    // the next and retired keys open too (a rotation promotes the next key, signing with it)
    const r = await rotateKeys(env2.rt, { now: true });
    await env2.rt.keystore.reload();
    t.equal((await signAccessToken(env2.rt, input)).kid, r.activated);
    const retired = env2.rt.keystore.list().filter((k) => k.state === 'retired');
    t.ok(retired.length >= 1 && retired.every((k) => k.publicKey));
  });
}

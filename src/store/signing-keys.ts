// Repository functions for signing_keys: the statements of the key lifecycle (src/keys/): insert,
// promotion, retirement, revocation, deletion, rewrap, and the lifecycle lock and NOTIFY. Sealing,
// key generation and the timing rules stay in src/keys/; these only read and write rows.
import { sql, type Kysely } from 'kysely';
import { KEYS_CHANNEL } from '../core/channels.js';
import type { Database, KeyState, SigningKeyRow } from '../db/types.js';

/** One advisory lock serializes every change of signing keys (bootstrap, rotation, revocation …). */
export const KEY_LIFECYCLE_LOCK_ID = 7_370_002;

/** Take the lifecycle lock for the rest of the transaction `db` runs in. */
export async function lockSigningKeys(db: Kysely<Database>): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(${KEY_LIFECYCLE_LOCK_ID})`.execute(db);
}

/** NOTIFY latchkey_keys inside the transaction: delivered at commit, never for a change that rolled back. */
export async function notifySigningKeysChanged(db: Kysely<Database>, payload: string): Promise<void> {
  await sql`SELECT pg_notify(${KEYS_CHANNEL}, ${payload})`.execute(db);
}

/** A key to insert, its private part already sealed under the KEK `kekId`. */
export interface NewSigningKey {
  kid: string;
  alg: string;
  state: 'next' | 'active';
  publicJwk: Record<string, unknown>;
  privateSealed: string;
  kekId: string;
  at: Date;
  promotedEarly: boolean;
}

/** Insert a key, published at `at` (and activated at `at` when active). */
export async function insertSigningKey(db: Kysely<Database>, k: NewSigningKey): Promise<void> {
  await db
    .insertInto('signing_keys')
    .values({
      kid: k.kid,
      alg: k.alg,
      state: k.state,
      public_jwk: JSON.stringify(k.publicJwk),
      private_sealed: k.privateSealed,
      kek_id: k.kekId,
      created_at: k.at,
      published_at: k.at,
      activated_at: k.state === 'active' ? k.at : null,
      promoted_early: k.promotedEarly,
    })
    .execute();
}

/** Some key whose private part is sealed under a KEK other than `kekId`, if any. */
export async function findKeySealedByOtherKek(db: Kysely<Database>, kekId: string): Promise<{ kek_id: string } | undefined> {
  return db.selectFrom('signing_keys').select('kek_id').where('kek_id', '!=', kekId).where('private_sealed', '!=', '').limit(1).executeTakeFirst();
}

/** The active and next keys of `alg` (kid and state), oldest published first. */
export async function activeAndNextKeyStates(db: Kysely<Database>, alg: string): Promise<{ kid: string; state: KeyState }[]> {
  return db.selectFrom('signing_keys').select(['kid', 'state']).where('alg', '=', alg).where('state', 'in', ['active', 'next']).orderBy('published_at').execute();
}

/** The active and next rows of `alg`, oldest published first (then by kid). */
export async function activeAndNextKeys(db: Kysely<Database>, alg: string): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().where('alg', '=', alg).where('state', 'in', ['active', 'next']).orderBy('published_at').orderBy('kid').execute();
}

/** Every key that is not revoked, by published_at then kid (what the keystore loads). */
export async function unrevokedSigningKeys(db: Kysely<Database>): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().where('state', '!=', 'revoked').orderBy('published_at').orderBy('kid').execute();
}

/** Every key (without the revoked ones when `includeRevoked` is false), by alg, published_at, kid. */
export async function listSigningKeys(db: Kysely<Database>, opts: { includeRevoked?: boolean } = {}): Promise<SigningKeyRow[]> {
  let q = db.selectFrom('signing_keys').selectAll();
  if (opts.includeRevoked === false) q = q.where('state', '!=', 'revoked');
  return q.orderBy('alg').orderBy('published_at').orderBy('kid').execute();
}

/** One key by kid. */
export async function findSigningKey(db: Kysely<Database>, kid: string): Promise<SigningKeyRow | undefined> {
  return db.selectFrom('signing_keys').selectAll().where('kid', '=', kid).executeTakeFirst();
}

/** The state (and revocation time) of a key by kid, if it is here. */
export async function findSigningKeyState(db: Kysely<Database>, kid: string): Promise<Pick<SigningKeyRow, 'state' | 'revoked_at'> | undefined> {
  return db.selectFrom('signing_keys').select(['state', 'revoked_at']).where('kid', '=', kid).executeTakeFirst();
}

/** Make a key active from `at`; `promotedEarly` when it signs before it was published long enough. */
export async function activateSigningKey(db: Kysely<Database>, kid: string, at: Date, promotedEarly: boolean): Promise<void> {
  await db.updateTable('signing_keys').set({ state: 'active', activated_at: at, promoted_early: promotedEarly }).where('kid', '=', kid).execute();
}

/** Retire a key at `at`; it stays published until `expiresAt`. */
export async function retireSigningKey(db: Kysely<Database>, kid: string, at: Date, expiresAt: Date): Promise<void> {
  await db.updateTable('signing_keys').set({ state: 'retired', retired_at: at, expires_at: expiresAt }).where('kid', '=', kid).execute();
}

/** Revoke a key at `at`, destroying its sealed private part. */
export async function revokeSigningKey(db: Kysely<Database>, kid: string, at: Date): Promise<void> {
  await db.updateTable('signing_keys').set({ state: 'revoked', revoked_at: at, private_sealed: '' }).where('kid', '=', kid).execute();
}

/** Delete the next keys of `alg`; returns their kids. */
export async function deleteNextKeys(db: Kysely<Database>, alg: string): Promise<{ kid: string }[]> {
  return db.deleteFrom('signing_keys').where('alg', '=', alg).where('state', '=', 'next').returning('kid').execute();
}

/** Delete the retired keys whose expiry is at or before `at`; returns their kid and alg. */
export async function deleteExpiredRetiredKeys(db: Kysely<Database>, at: Date): Promise<{ kid: string; alg: string }[]> {
  return db.deleteFrom('signing_keys').where('state', '=', 'retired').where('expires_at', '<=', at).returning(['kid', 'alg']).execute();
}

/** The keys that still have a sealed private part (kid, sealed part, KEK id). */
export async function sealedSigningKeys(db: Kysely<Database>): Promise<Pick<SigningKeyRow, 'kid' | 'private_sealed' | 'kek_id'>[]> {
  return db.selectFrom('signing_keys').select(['kid', 'private_sealed', 'kek_id']).where('private_sealed', '!=', '').execute();
}

/** Store a key's private part sealed anew under the KEK `kekId`. */
export async function resealSigningKey(db: Kysely<Database>, kid: string, privateSealed: string, kekId: string): Promise<void> {
  await db.updateTable('signing_keys').set({ private_sealed: privateSealed, kek_id: kekId }).where('kid', '=', kid).execute();
}

/** Move the keys without a private part (revoked) to the KEK `kekId`. */
export async function moveUnsealedKeysToKek(db: Kysely<Database>, kekId: string): Promise<void> {
  await db.updateTable('signing_keys').set({ kek_id: kekId }).where('private_sealed', '=', '').execute();
}

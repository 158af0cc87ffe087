// Repository functions for server_secrets (cookie signing, CSRF …), stored sealed under the KEK;
// the sealing itself is in src/keys/secrets.ts.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';

export interface ServerSecretRow {
  name: string;
  sealed: string;
  kek_id: string;
}

/** Insert a sealed secret unless one of that name exists (the first writer wins). */
export async function insertServerSecretIfAbsent(db: Kysely<Database>, s: { name: string; sealed: string; kekId: string; createdAt: Date }): Promise<void> {
  await db
    .insertInto('server_secrets')
    .values({ name: s.name, sealed: s.sealed, kek_id: s.kekId, created_at: s.createdAt })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}

/** The sealed value of a secret; throws when there is none. */
export async function serverSecretSealed(db: Kysely<Database>, name: string): Promise<string> {
  const row = await db.selectFrom('server_secrets').select(['sealed']).where('name', '=', name).executeTakeFirstOrThrow();
  return row.sealed;
}

/** Every secret (name, sealed value, KEK id). */
export async function listServerSecrets(db: Kysely<Database>): Promise<ServerSecretRow[]> {
  return db.selectFrom('server_secrets').select(['name', 'sealed', 'kek_id']).execute();
}

/** Store a secret sealed anew under the KEK `kekId`. */
export async function resealServerSecret(db: Kysely<Database>, name: string, sealed: string, kekId: string): Promise<void> {
  await db.updateTable('server_secrets').set({ sealed, kek_id: kekId }).where('name', '=', name).execute();
}

// Remembered consent: per user and client, the scopes the user approved.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';

export async function grantedScopes(db: Kysely<Database>, userId: string, clientId: string): Promise<string[]> {
  const row = await db.selectFrom('consents').select('scopes').where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
  return row?.scopes ?? [];
}

export async function rememberConsent(db: Kysely<Database>, userId: string, clientId: string, scopes: string[], at: Date): Promise<void> {
  const existing = await grantedScopes(db, userId, clientId);
  const merged = [...new Set([...existing, ...scopes])];
  await db
    .insertInto('consents')
    .values({ user_id: userId, client_id: clientId, scopes: JSON.stringify(merged), updated_at: at })
    .onConflict((oc) => oc.columns(['user_id', 'client_id']).doUpdateSet({ scopes: JSON.stringify(merged), updated_at: at }))
    .execute();
}

// The jtis of private_key_jwt client assertions, each accepted once (RFC 7523 §3).
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';

/**
 * Record a client assertion's jti (RFC 7523 §3 replay): true when it is new for the client, false
 * when it was already used. Kept until the assertion has expired.
 */
export async function recordAssertionJti(db: Kysely<Database>, clientId: string, jti: string, expiresAt: Date): Promise<boolean> {
  const inserted = await db
    .insertInto('client_assertion_jtis')
    .values({ client_id: clientId, jti, expires_at: expiresAt })
    .onConflict((oc) => oc.columns(['client_id', 'jti']).doNothing())
    .executeTakeFirst();
  return Number(inserted.numInsertedOrUpdatedRows ?? 0n) > 0;
}

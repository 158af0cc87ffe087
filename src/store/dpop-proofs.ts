// The DPoP replay store (RFC 9449 §11.1): each proof's jti (per proof key, as a digest) is
// recorded once, in Postgres, so a proof used at one replica is refused at every other. An entry
// lives as long as its proof could still be fresh; the pruner deletes it after.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';

/** Record a proof as used; false when it was used before. */
export async function recordDpopProof(db: Kysely<Database>, replayKey: string, freshUntil: number): Promise<boolean> {
  const r = await db
    .insertInto('dpop_proofs')
    .values({ jti_digest: replayKey, expires_at: new Date(freshUntil * 1000) })
    .onConflict((oc) => oc.column('jti_digest').doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
}

// Server secrets (cookie signing, CSRF) are created once, sealed under the KEK in Postgres and
// shared by every replica.
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Database } from '../db/types.js';
import { open, seal, type Kek } from './kek.js';

export const secretAad = (name: string): string => `latchkey:secret:${name}`;

export async function getOrCreateSecret(db: Kysely<Database>, kek: Kek, name: string, clock: Clock, bytes = 32): Promise<Buffer> {
  const aad = secretAad(name);
  await db
    .insertInto('server_secrets')
    .values({ name, sealed: seal(kek, crypto.randomBytes(bytes), aad), kek_id: kek.id, created_at: new Date(clock.now()) })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('server_secrets').select(['sealed']).where('name', '=', name).executeTakeFirstOrThrow();
  return open(kek, row.sealed, aad);
}

// Server secrets (cookie signing, CSRF) are created once, sealed under the KEK in Postgres and
// shared by every replica.
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Database } from '../db/types.js';
import { insertServerSecretIfAbsent, serverSecretSealed } from '../store/server-secrets.js';
import { open, seal, type Kek } from './kek.js';

export const secretAad = (name: string): string => `latchkey:secret:${name}`;

export async function getOrCreateSecret(db: Kysely<Database>, kek: Kek, name: string, clock: Clock, bytes = 32): Promise<Buffer> {
  const aad = secretAad(name);
  await insertServerSecretIfAbsent(db, { name, sealed: seal(kek, crypto.randomBytes(bytes), aad), kekId: kek.id, createdAt: new Date(clock.now()) });
  return open(kek, await serverSecretSealed(db, name), aad);
}

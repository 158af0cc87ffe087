// Interactions: a pending authorization request kept server-side (10 minutes) while the user logs
// in and consents; the browser holds only its opaque id.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import { digest, randomToken } from '../tokens/opaque.js';
import type { AuthorizationRequest } from '../protocol/authorization-request.js';

export interface Interaction {
  idDigest: string;
  clientId: string;
  request: AuthorizationRequest;
  userId: string | null;
  sessionSid: string | null;
  loginDone: boolean;
  expiresAt: Date;
}

export async function createInteraction(
  db: Kysely<Database>,
  input: { request: AuthorizationRequest; at: Date; ttl: number; userId?: string; sessionSid?: string },
): Promise<string> {
  const id = randomToken(32);
  await db
    .insertInto('interactions')
    .values({
      id_digest: digest(id),
      client_id: input.request.clientId,
      params: JSON.stringify(input.request),
      user_id: input.userId ?? null,
      session_sid: input.sessionSid ?? null,
      created_at: input.at,
      expires_at: new Date(input.at.getTime() + input.ttl * 1000),
    })
    .execute();
  return id;
}

export async function findInteraction(db: Kysely<Database>, id: string, at: Date): Promise<Interaction | undefined> {
  const row = await db.selectFrom('interactions').selectAll().where('id_digest', '=', digest(id)).executeTakeFirst();
  if (!row || row.expires_at.getTime() <= at.getTime()) return undefined;
  return {
    idDigest: row.id_digest,
    clientId: row.client_id,
    request: row.params as unknown as AuthorizationRequest,
    userId: row.user_id,
    sessionSid: row.session_sid,
    loginDone: row.login_done,
    expiresAt: row.expires_at,
  };
}

export async function markInteractionLoggedIn(db: Kysely<Database>, idDigest: string, userId: string, sessionSid: string): Promise<void> {
  await db.updateTable('interactions').set({ user_id: userId, session_sid: sessionSid, login_done: true }).where('id_digest', '=', idDigest).execute();
}

/** Consume the interaction (single use); false if it was already consumed. */
export async function consumeInteraction(db: Kysely<Database>, idDigest: string): Promise<boolean> {
  const r = await db.deleteFrom('interactions').where('id_digest', '=', idDigest).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

// Authorization codes: 256-bit, stored as digests, single use, short-lived, bound to client,
// redirect URI, PKCE challenge, scopes, nonce, auth time and login session.
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/types.js';
import type { DbHandle } from '../db/create-db.js';
import { digest, randomToken } from '../tokens/opaque.js';

export interface CodeGrant {
  clientId: string;
  userId: string;
  redirectUri: string;
  codeChallenge: string | null;
  scopes: string[];
  resources: string[];
  nonce: string | null;
  authTime: Date;
  sessionSid: string | null;
}

export async function createCode(dbh: Pick<DbHandle, 'db' | 'prepared'>, grant: CodeGrant, at: Date, ttl: number): Promise<string> {
  const code = randomToken(32);
  const query = dbh.db
    .insertInto('authorization_codes')
    .values({
      code_digest: digest(code),
      client_id: grant.clientId,
      user_id: grant.userId,
      redirect_uri: grant.redirectUri,
      code_challenge: grant.codeChallenge,
      scopes: JSON.stringify(grant.scopes),
      resources: JSON.stringify(grant.resources),
      nonce: grant.nonce,
      auth_time: grant.authTime,
      session_sid: grant.sessionSid,
      created_at: at,
      expires_at: new Date(at.getTime() + ttl * 1000),
    })
    .compile();
  await dbh.prepared('latchkey_code_insert', query);
  return code;
}

export interface StoredCode extends CodeGrant {
  codeDigest: string;
  expiresAt: Date;
  consumedAt: Date | null;
}

/** Lock the code's row for this transaction (two redemptions at once are serialized). */
export async function lockCode(trx: Transaction<Database>, code: string): Promise<StoredCode | undefined> {
  const row = await trx.selectFrom('authorization_codes').selectAll().where('code_digest', '=', digest(code)).forUpdate().executeTakeFirst();
  if (!row) return undefined;
  return {
    codeDigest: row.code_digest,
    clientId: row.client_id,
    userId: row.user_id,
    redirectUri: row.redirect_uri,
    codeChallenge: row.code_challenge,
    scopes: row.scopes,
    resources: row.resources,
    nonce: row.nonce,
    authTime: row.auth_time,
    sessionSid: row.session_sid,
    expiresAt: row.expires_at,
    consumedAt: row.consumed_at,
  };
}

export async function markCodeConsumed(trx: Transaction<Database>, codeDigest: string, at: Date): Promise<void> {
  await trx.updateTable('authorization_codes').set({ consumed_at: at }).where('code_digest', '=', codeDigest).execute();
}

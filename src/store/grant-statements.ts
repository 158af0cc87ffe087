// The two statements on the token path, each one round trip: redeeming an authorization code
// (src/grants/authorization-code.ts) and rotating a refresh token (src/grants/refresh-token.ts).
// They are compiled here and run as named prepared statements by the caller (DbHandle.prepared).
import { sql, type CompiledQuery, type Kysely } from 'kysely';
import type { Database } from '../db/types.js';

export interface CodeRedemption {
  familyId: string;
  sessionSid: string | null;
  userId: string;
  clientId: string;
  scopes: string[];
  resources: string[];
  authTime: Date;
  offline: boolean;
  codeDigest: string;
  now: Date;
  idle: Date;
  absolute: Date;
  ip: string;
  userAgent: string | null;
  accessExpiresAt: Date;
  dpopJkt: string | null;
}

export interface CodeRedemptionRow {
  email: string;
  name: string | null;
  email_verified: boolean;
  created: string | number;
  status_idx: string | null;
}

/**
 * If the user is active and the login session has not ended (its row locked FOR SHARE), create
 * the family — unless one exists for this code (ON CONFLICT on the code's digest: a replay).
 */
export function codeRedemptionQuery(db: Kysely<Database>, r: CodeRedemption): CompiledQuery<CodeRedemptionRow> {
  return sql<CodeRedemptionRow>`
    WITH sess AS (
      SELECT ended_at FROM login_sessions WHERE sid = ${r.sessionSid}::text FOR SHARE
    ), u AS (
      SELECT id, email, name, email_verified FROM users WHERE id = ${r.userId}::uuid AND NOT disabled
    ), fam AS (
      INSERT INTO refresh_families (id, user_id, client_id, scopes, resources, auth_time, session_sid, offline, code_digest,
        created_at, last_used_at, idle_expires_at, absolute_expires_at, created_ip, created_user_agent, access_expires_at, dpop_jkt)
      SELECT ${r.familyId}::uuid, u.id, ${r.clientId}::text, ${JSON.stringify(r.scopes)}::jsonb, ${JSON.stringify(r.resources)}::jsonb,
        ${r.authTime}::timestamptz, ${r.sessionSid}::text, ${r.offline}::boolean, ${r.codeDigest}::text,
        ${r.now}::timestamptz, ${r.now}::timestamptz, ${r.idle}::timestamptz, ${r.absolute}::timestamptz,
        ${r.ip}::text, ${r.userAgent}::text, ${r.accessExpiresAt}::timestamptz, ${r.dpopJkt}::text
      FROM u WHERE NOT EXISTS (SELECT 1 FROM sess WHERE sess.ended_at IS NOT NULL)
      ON CONFLICT (code_digest) DO NOTHING
      RETURNING id, status_idx
    )
    SELECT u.email, u.name, u.email_verified, (SELECT count(*) FROM fam) AS created, (SELECT status_idx::text FROM fam) AS status_idx FROM u
  `.compile(db);
}

/** Has a family been created from this code (it was redeemed)? */
export async function codeWasRedeemed(db: Kysely<Database>, codeDigest: string): Promise<boolean> {
  return Boolean(await db.selectFrom('refresh_families').select('id').where('code_digest', '=', codeDigest).executeTakeFirst());
}

export interface Rotation {
  familyId: string;
  generation: number;
  clientId: string;
  requested: string[];
  resources: string[];
  /** The request's DPoP key thumbprint, '' without a proof. */
  jkt: string;
  now: Date;
  idleExpires: Date;
  accessExpiresAt: Date;
}

export interface RotatedRow {
  id: string;
  user_id: string;
  scopes: string[];
  resources: string[];
  auth_time: Date;
  session_sid: string | null;
  status_idx: string | null;
  generation: number;
  email: string;
  name: string | null;
  email_verified: boolean;
}

/**
 * The rotation, in one statement: move the family from `generation` to the next if — and only
 * if — that is its current generation, it is live and the client's, the user is active and the
 * requested scope and resources are within the grant, and a family bound to a DPoP key sees a
 * proof by that key; record the new access token's expiry (its family key is denylisted until then
 * when the family is revoked). None of the columns it writes is indexed, so the update is HOT.
 * Under a concurrent rotation or revocation the row lock makes it re-check the committed row, and
 * it matches nothing.
 */
export function rotationQuery<T = RotatedRow>(db: Kysely<Database>, r: Rotation): CompiledQuery<T> {
  return sql<T>`
    UPDATE refresh_families f SET
      generation = f.generation + 1,
      rotated_at = ${r.now}::timestamptz,
      last_used_at = ${r.now}::timestamptz,
      idle_expires_at = LEAST(${r.idleExpires}::timestamptz, f.absolute_expires_at),
      access_expires_at = GREATEST(f.access_expires_at, ${r.accessExpiresAt}::timestamptz)
    FROM users u
    WHERE f.id = ${r.familyId}::uuid AND f.generation = ${r.generation}::int AND u.id = f.user_id
      -- "IS TRUE" keeps the client check out of index conditions: with stale statistics the
      -- planner could otherwise walk the client's live families through refresh_families_client_live
      AND (f.client_id = ${r.clientId}::text) IS TRUE AND f.revoked_at IS NULL
      AND f.idle_expires_at > ${r.now}::timestamptz AND f.absolute_expires_at > ${r.now}::timestamptz
      AND NOT u.disabled
      AND f.scopes @> ${JSON.stringify(r.requested)}::jsonb
      AND (jsonb_array_length(f.resources) = 0 OR f.resources @> ${JSON.stringify(r.resources)}::jsonb)
      -- RFC 9449 §5: a bound family rotates only with a proof by its key
      AND (f.dpop_jkt IS NULL OR f.dpop_jkt = ${r.jkt}::text)
    RETURNING f.id, f.user_id, f.scopes, f.resources, f.auth_time, f.session_sid, f.status_idx::text AS status_idx, f.generation,
      u.email, u.name, u.email_verified`.compile(db);
}

/** The family's row, locked FOR UPDATE (the slow path of a refresh). */
export function lockFamilyRow(trx: Kysely<Database>, id: string) {
  return trx.selectFrom('refresh_families').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

/** A refresh token from before the sealing, by its digest, locked FOR UPDATE. */
export function lockLegacyRefreshToken(trx: Kysely<Database>, tokenDigest: string) {
  return trx.selectFrom('refresh_tokens').selectAll().where('token_digest', '=', tokenDigest).forUpdate().executeTakeFirst();
}

/** Consume a refresh token from before the sealing, for good (its successor is sealed). */
export async function consumeLegacyRefreshToken(trx: Kysely<Database>, tokenDigest: string, at: Date): Promise<void> {
  await trx.updateTable('refresh_tokens').set({ consumed_at: at }).where('token_digest', '=', tokenDigest).execute();
}

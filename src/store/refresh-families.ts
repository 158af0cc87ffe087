// Refresh-token families. Their tokens are sealed (src/tokens/refresh-tokens.ts) and stored nowhere;
// those issued before the sealing are found by their digests in refresh_tokens.
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import { isUuid } from '../core/vocabulary.js';
import { digest } from '../core/crypto.js';

import { DENYLIST_CHANNEL, DENYLIST_RETENTION_SECONDS, familyDenyKey, statusDenyKey } from '../core/channels.js';

export interface NewFamily {
  id: string;
  userId: string;
  clientId: string;
  scopes: string[];
  resources: string[];
  authTime: Date;
  sessionSid: string | null;
  offline: boolean;
  codeDigest: string | null;
  ip?: string;
  userAgent?: string;
  /** When the access token issued with the family expires (seconds since the epoch). */
  accessTokenExp: number;
}

export async function insertFamily(db: Kysely<Database>, f: NewFamily, at: Date, idleTtl: number, absoluteTtl: number): Promise<void> {
  const absolute = new Date(at.getTime() + absoluteTtl * 1000);
  const idle = new Date(Math.min(at.getTime() + idleTtl * 1000, absolute.getTime()));
  await db
    .insertInto('refresh_families')
    .values({
      id: f.id,
      user_id: f.userId,
      client_id: f.clientId,
      scopes: JSON.stringify(f.scopes),
      resources: JSON.stringify(f.resources),
      auth_time: f.authTime,
      session_sid: f.sessionSid,
      offline: f.offline,
      code_digest: f.codeDigest,
      created_at: at,
      last_used_at: at,
      idle_expires_at: idle,
      absolute_expires_at: absolute,
      created_ip: f.ip?.slice(0, 64) ?? null,
      created_user_agent: f.userAgent?.slice(0, 256) ?? null,
      access_expires_at: new Date(f.accessTokenExp * 1000),
    })
    .execute();
}

export interface PresentedRefreshToken {
  familyId: string;
  clientId: string;
  userId: string;
  scopes: string[];
  revokedAt: Date | null;
  idleExpiresAt: Date;
  absoluteExpiresAt: Date;
  userDisabled: boolean;
  /** RFC 9449 §5: the proof key a public client's family is bound to. */
  dpopJkt: string | null;
  /** It is the family's live token (the current generation; for a token from before the sealing, unconsumed). */
  current: boolean;
  issuedAt: Date;
}

/**
 * The family of a presented refresh token (src/tokens/refresh-tokens.ts `findRefreshToken` opens
 * it): a sealed token names its family and generation; one from before the sealing is found by
 * the digest of the token.
 */
export async function findRefreshTokenFamily(
  db: Kysely<Database>,
  sealed: { familyId: string; generation: number; issuedAt: Date } | undefined,
  token: string,
): Promise<PresentedRefreshToken | undefined> {
  const q = db
    .selectFrom('refresh_families as f')
    .innerJoin('users as u', 'u.id', 'f.user_id')
    .select(['f.id', 'f.client_id', 'f.user_id', 'f.scopes', 'f.revoked_at', 'f.idle_expires_at', 'f.absolute_expires_at', 'f.generation', 'f.dpop_jkt', 'u.disabled']);
  if (sealed) {
    const row = await q.where('f.id', '=', sealed.familyId).executeTakeFirst();
    return row && { ...summary(row), current: row.generation === sealed.generation, issuedAt: sealed.issuedAt };
  }
  const row = await q
    .innerJoin('refresh_tokens as t', 't.family_id', 'f.id')
    .select(['t.created_at', 't.consumed_at'])
    .where('t.token_digest', '=', digest(token))
    .executeTakeFirst();
  return row && { ...summary(row), current: row.consumed_at === null, issuedAt: row.created_at };
}

const summary = (row: { id: string; client_id: string; user_id: string; scopes: string[]; revoked_at: Date | null; idle_expires_at: Date; absolute_expires_at: Date; disabled: boolean; dpop_jkt: string | null }) => ({
  familyId: row.id,
  dpopJkt: row.dpop_jkt,
  clientId: row.client_id,
  userId: row.user_id,
  scopes: row.scopes,
  revokedAt: row.revoked_at,
  idleExpiresAt: row.idle_expires_at,
  absoluteExpiresAt: row.absolute_expires_at,
  userDisabled: row.disabled,
});

/**
 * Revoke a family: every refresh token in it stops working and the family goes on the denylist
 * until the last access token it issued expires, so that every one of them is refused; other
 * replicas hear of it at commit (pg_notify is transactional). Returns false when the family was
 * already revoked or does not exist.
 */
export async function revokeFamily(db: Kysely<Database>, familyId: string, reason: string, at: Date): Promise<boolean> {
  const row = await db
    .updateTable('refresh_families')
    .set({ revoked_at: at, revoked_reason: reason })
    .where('id', '=', familyId)
    .where('revoked_at', 'is', null)
    .returning(['access_expires_at', 'status_idx'])
    .executeTakeFirst();
  if (!row) return false;
  // the family key refuses its tokens at our endpoints; its status index, in the status lists
  if (row.access_expires_at) await denylist(db, [{ jti: familyDenyKey(familyId), exp: row.access_expires_at.getTime() / 1000, statusIdx: row.status_idx }], at);
  return true;
}

/**
 * Put access tokens' jtis (or family keys) on the denylist until they can no longer be accepted:
 * a token inside the clock leeway past its `exp` still passes verification, so it is still listed.
 */
export async function denylist(db: Kysely<Database>, tokens: Array<{ jti: string; exp: number; statusIdx?: string | number }>, at: Date): Promise<number> {
  const live = tokens.filter((t) => (t.exp + DENYLIST_RETENTION_SECONDS) * 1000 > at.getTime());
  if (live.length === 0) return 0;
  await db
    .insertInto('denylist')
    .values(live.map((t) => ({ jti: t.jti, expires_at: new Date(t.exp * 1000), status_idx: t.statusIdx === undefined ? null : String(t.statusIdx) })))
    .onConflict((oc) => oc.column('jti').doNothing())
    .execute();
  await sql`SELECT pg_notify(${DENYLIST_CHANNEL}, '')`.execute(db);
  return live.length;
}

export async function revokeFamiliesWhere(
  db: Kysely<Database>,
  filter: { userId?: string; clientId?: string; sessionSid?: string; onlyOnline?: boolean; codeDigest?: string },
  reason: string,
  at: Date,
): Promise<number> {
  let q = db.selectFrom('refresh_families').select('id').where('revoked_at', 'is', null);
  if (filter.userId) q = q.where('user_id', '=', filter.userId);
  if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
  if (filter.sessionSid) q = q.where('session_sid', '=', filter.sessionSid);
  if (filter.codeDigest) q = q.where('code_digest', '=', filter.codeDigest);
  if (filter.onlyOnline) q = q.where('offline', '=', false);
  const ids = (await q.execute()).map((r) => r.id);
  let n = 0;
  for (const id of ids) if (await revokeFamily(db, id, reason, at)) n++;
  return n;
}

export interface FamilySummary {
  id: string;
  client_id: string;
  user_id: string;
  scope: string;
  offline: boolean;
  created_at: string;
  last_used_at: string;
  idle_expires_at: string;
  absolute_expires_at: string;
  revoked_at: string | null;
  revoked_reason: string | null;
  created_ip: string | null;
  created_user_agent: string | null;
}

export async function listFamilies(db: Kysely<Database>, filter: { userId?: string; clientId?: string; includeRevoked?: boolean }): Promise<FamilySummary[]> {
  let q = db.selectFrom('refresh_families').selectAll();
  if (filter.userId) q = q.where('user_id', '=', filter.userId);
  if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
  if (!filter.includeRevoked) q = q.where('revoked_at', 'is', null);
  const rows = await q.orderBy('created_at', 'desc').limit(1000).execute();
  return rows.map((r) => ({
    id: r.id,
    client_id: r.client_id,
    user_id: r.user_id,
    scope: r.scopes.join(' '),
    offline: r.offline,
    created_at: r.created_at.toISOString(),
    last_used_at: r.last_used_at.toISOString(),
    idle_expires_at: r.idle_expires_at.toISOString(),
    absolute_expires_at: r.absolute_expires_at.toISOString(),
    revoked_at: r.revoked_at?.toISOString() ?? null,
    revoked_reason: r.revoked_reason,
    created_ip: r.created_ip,
    created_user_agent: r.created_user_agent,
  }));
}

/** A family's owner, for an admin revoking it by id (undefined for an unknown or malformed id). */
export async function findFamilyOwner(db: Kysely<Database>, id: string): Promise<{ id: string; user_id: string; client_id: string } | undefined> {
  if (!isUuid(id)) return undefined;
  return db.selectFrom('refresh_families').select(['id', 'user_id', 'client_id']).where('id', '=', id).executeTakeFirst();
}

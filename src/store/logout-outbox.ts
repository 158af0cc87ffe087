// The outbox of Back-Channel Logout notices (OIDC Back-Channel Logout 1.0). A notice is written by
// the transaction of the revocation that causes it — committed together or not at all — and
// NOTIFYs latchkey_logout_notices at that commit, so that a replica's delivery loop
// (src/backchannel/delivery.ts) wakes within milliseconds. The queue functions must run before
// the revocation in that transaction: they read the families and sessions still live.
import crypto from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import { isUuid } from '../core/vocabulary.js';
import { randomToken } from '../core/crypto.js';
import { recordAudit } from './audit.js';

import { LOGOUT_NOTICES_CHANNEL } from '../core/channels.js';
export { LOGOUT_NOTICES_CHANNEL };

interface Candidate {
  client_id: string;
  user_id: string;
  session_sid: string | null;
  session_required: boolean;
}

interface NoticeKey {
  clientId: string;
  sub: string;
  sid: string | null;
}

const OPENID = JSON.stringify(['openid']);

function candidates(db: Kysely<Database>) {
  return db
    .selectFrom('refresh_families as f')
    .innerJoin('clients as c', 'c.client_id', 'f.client_id')
    .select(['f.client_id', 'f.user_id', 'f.session_sid', 'c.backchannel_logout_session_required as session_required'])
    .where('c.backchannel_logout_uri', 'is not', null)
    .distinct();
}

/** A family that can still be used: not revoked, not expired. */
const live = (at: Date) => sql<boolean>`(f.revoked_at IS NULL AND f.idle_expires_at > ${at} AND f.absolute_expires_at > ${at})`;
/** A family whose client received an ID token in its login session. */
const gotIdToken = sql<boolean>`f.scopes @> ${OPENID}::jsonb`;

async function insertNotices(db: Kysely<Database>, keys: NoticeKey[], event: string, at: Date): Promise<number> {
  const seen = new Set<string>();
  const rows = [];
  for (const k of keys) {
    const id = `${k.clientId}\n${k.sub}\n${k.sid ?? ''}`;
    if (seen.has(id)) continue;
    seen.add(id);
    rows.push({ jti: randomToken(16), client_id: k.clientId, sub: k.sub, sid: k.sid, event, created_at: at, next_attempt_at: at });
  }
  if (rows.length === 0) return 0;
  await db.insertInto('logout_notices').values(rows).execute();
  // transactional: heard at commit, never for a revocation that rolled back
  await sql`SELECT pg_notify(${LOGOUT_NOTICES_CHANNEL}, '')`.execute(db);
  return rows.length;
}

/**
 * A login session ends (RP-initiated logout): one notice (sub and sid) for every client that has
 * a live family from the session or received an ID token in it.
 */
export async function queueSessionLogout(db: Kysely<Database>, sid: string, event: string, at: Date): Promise<number> {
  const rows: Candidate[] = await candidates(db)
    .where('f.session_sid', '=', sid)
    .where((eb) => eb.or([live(at), gotIdToken]))
    .execute();
  return insertNotices(db, rows.map((r) => ({ clientId: r.client_id, sub: r.user_id, sid })), event, at);
}

/**
 * Every session of a user ends (sign-out everywhere, disabled, deleted, new password): for every
 * client with a live family of the user, or that received an ID token in one of the user's live
 * login sessions, one notice for the user (sub only: "all of this user's sessions", §2.4) — or,
 * for a client that requires sid (backchannel_logout_session_required), one per session.
 */
export async function queueUserLogout(db: Kysely<Database>, userId: string, event: string, at: Date): Promise<number> {
  const liveSessions = db
    .selectFrom('login_sessions')
    .select('sid')
    .where('user_id', '=', userId)
    .where('ended_at', 'is', null)
    .where('idle_expires_at', '>', at)
    .where('absolute_expires_at', '>', at);
  const rows: Candidate[] = await candidates(db)
    .where('f.user_id', '=', userId)
    .where((eb) => eb.or([live(at), eb.and([gotIdToken, eb('f.session_sid', 'in', liveSessions)])]))
    .execute();
  const keys: NoticeKey[] = [];
  for (const r of rows) {
    if (!r.session_required) keys.push({ clientId: r.client_id, sub: userId, sid: null });
    else if (r.session_sid) keys.push({ clientId: r.client_id, sub: userId, sid: r.session_sid });
  }
  return insertNotices(db, keys, event, at);
}

/**
 * Families are revoked one by one (an admin's session revoke, refresh-token reuse, a client's
 * sessions revoked): one notice (sub and sid) per client and login session of the live ones.
 */
export async function queueFamilyLogout(db: Kysely<Database>, filter: { familyIds?: string[]; clientId?: string }, event: string, at: Date): Promise<number> {
  if (!filter.familyIds && !filter.clientId) throw new Error('queueFamilyLogout needs familyIds or clientId');
  if (filter.familyIds && filter.familyIds.length === 0) return 0;
  let q = candidates(db).where(live(at));
  if (filter.familyIds) q = q.where('f.id', 'in', filter.familyIds);
  if (filter.clientId) q = q.where('f.client_id', '=', filter.clientId);
  const rows: Candidate[] = await q.execute();
  // without a sid the notice would mean "every session of the user" at the client: too much for one family
  return insertNotices(db, rows.filter((r) => r.session_sid).map((r) => ({ clientId: r.client_id, sub: r.user_id, sid: r.session_sid })), event, at);
}

// ───────────────────────────── delivery side ─────────────────────────────

export interface ClaimedNotice {
  id: string;
  jti: string;
  client_id: string;
  sub: string | null;
  sid: string | null;
  event: string;
  created_at: Date;
  attempts: number;
  claim: string;
}

/**
 * Claim up to `limit` due notices for this replica: each gets a fresh claim id, one more attempt
 * and a lease (next_attempt_at moves to `leaseUntil`); replicas claiming at once skip each other's
 * rows (FOR UPDATE SKIP LOCKED). A replica that dies holding a claim loses it when the lease ends.
 */
export async function claimDueNotices(db: Kysely<Database>, limit: number, at: Date, leaseUntil: Date, excludeClients: string[] = []): Promise<ClaimedNotice[]> {
  if (limit <= 0) return [];
  const claim = crypto.randomUUID();
  const exclude = excludeClients.length ? sql`AND client_id NOT IN (${sql.join(excludeClients)})` : sql``;
  const r = await sql<Omit<ClaimedNotice, 'claim'>>`
    UPDATE logout_notices SET claim = ${claim}::uuid, attempts = attempts + 1, last_attempt_at = ${at}, next_attempt_at = ${leaseUntil}
    WHERE id IN (
      SELECT id FROM logout_notices
      WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ${at} ${exclude}
      ORDER BY next_attempt_at LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )
    RETURNING id, jti, client_id, sub, sid, event, created_at, attempts
  `.execute(db);
  return r.rows.map((row) => ({ ...row, id: String(row.id), claim }));
}

/** When the next pending notice falls due (clients in `excludeClients` left out). */
export async function nextDueAt(db: Kysely<Database>, excludeClients: string[] = []): Promise<Date | undefined> {
  let q = db.selectFrom('logout_notices').select((eb) => eb.fn.min('next_attempt_at').as('due')).where('delivered_at', 'is', null).where('failed_at', 'is', null);
  if (excludeClients.length) q = q.where('client_id', 'not in', excludeClients);
  const row = await q.executeTakeFirst();
  return row?.due ? new Date(row.due as unknown as string | Date) : undefined;
}

const mine = (n: Pick<ClaimedNotice, 'id' | 'claim'>) => sql<boolean>`id = ${n.id}::bigint AND claim = ${n.claim}::uuid`;

export async function markDelivered(db: Kysely<Database>, n: ClaimedNotice, at: Date): Promise<boolean> {
  const r = await db.updateTable('logout_notices').set({ delivered_at: at, claim: null, last_error: null }).where(mine(n)).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function markRetry(db: Kysely<Database>, n: ClaimedNotice, next: Date, error: string): Promise<boolean> {
  const r = await db.updateTable('logout_notices').set({ next_attempt_at: next, claim: null, last_error: error.slice(0, 500) }).where(mine(n)).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Give up on a notice, with an audit event, in one transaction. */
export async function markFailed(db: Kysely<Database>, n: ClaimedNotice, at: Date, error: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const r = await trx.updateTable('logout_notices').set({ failed_at: at, claim: null, last_error: error.slice(0, 500) }).where(mine(n)).executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) return false;
    const userId = n.sub && isUuid(n.sub) ? n.sub : null;
    await recordAudit(trx, at, {
      type: 'backchannel_logout.failed',
      actor: 'server',
      userId,
      clientId: n.client_id,
      details: { notice_id: n.id, jti: n.jti, sid: n.sid, event: n.event, attempts: n.attempts, since: n.created_at.toISOString(), last_error: error.slice(0, 500) },
    });
    return true;
  });
}

/** Hand back claimed notices undelivered (surplus, or a replica shutting down): due again at once, for any replica. */
export async function releaseNotices(db: Kysely<Database>, notices: Pick<ClaimedNotice, 'id' | 'claim'>[], at: Date): Promise<void> {
  if (notices.length === 0) return;
  await db
    .updateTable('logout_notices')
    .set({ claim: null, next_attempt_at: at })
    .where('id', 'in', notices.map((n) => n.id))
    .where('claim', 'in', [...new Set(notices.map((n) => n.claim))])
    .where('delivered_at', 'is', null)
    .where('failed_at', 'is', null)
    .execute();
  await sql`SELECT pg_notify(${LOGOUT_NOTICES_CHANNEL}, '')`.execute(db);
}

// ───────────────────────────── visibility ─────────────────────────────

export type NoticeStatus = 'pending' | 'delivered' | 'failed';

export interface NoticeSummary {
  id: string;
  status: NoticeStatus;
  client_id: string;
  sub: string | null;
  sid: string | null;
  event: string;
  jti: string;
  attempts: number;
  created_at: string;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_error: string | null;
  delivered_at: string | null;
  failed_at: string | null;
}

export async function listNotices(db: Kysely<Database>, filter: { status?: NoticeStatus; clientId?: string; limit?: number } = {}): Promise<NoticeSummary[]> {
  let q = db.selectFrom('logout_notices').selectAll();
  if (filter.status === 'pending') q = q.where('delivered_at', 'is', null).where('failed_at', 'is', null);
  if (filter.status === 'delivered') q = q.where('delivered_at', 'is not', null);
  if (filter.status === 'failed') q = q.where('failed_at', 'is not', null);
  if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
  const rows = await q.orderBy('id', 'desc').limit(Math.min(filter.limit ?? 100, 1000)).execute();
  return rows.map((r) => {
    const status: NoticeStatus = r.delivered_at ? 'delivered' : r.failed_at ? 'failed' : 'pending';
    return {
      id: String(r.id),
      status,
      client_id: r.client_id,
      sub: r.sub,
      sid: r.sid,
      event: r.event,
      jti: r.jti,
      attempts: r.attempts,
      created_at: r.created_at.toISOString(),
      next_attempt_at: status === 'pending' ? r.next_attempt_at.toISOString() : null,
      last_attempt_at: r.last_attempt_at?.toISOString() ?? null,
      last_error: r.last_error,
      delivered_at: r.delivered_at?.toISOString() ?? null,
      failed_at: r.failed_at?.toISOString() ?? null,
    };
  });
}

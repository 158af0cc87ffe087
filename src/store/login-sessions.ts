// Login sessions: the browser holds an opaque 256-bit id in a signed cookie; we store its digest.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import type { DbHandle } from '../db/create-db.js';
import { digest, randomToken } from '../core/crypto.js';

export interface LoginSession {
  sid: string;
  userId: string;
  authTime: Date;
  idleExpiresAt: Date;
  absoluteExpiresAt: Date;
}

export async function createLoginSession(
  db: Kysely<Database>,
  input: { userId: string; at: Date; idleTtl: number; absoluteTtl: number; ip?: string; userAgent?: string },
): Promise<{ cookieValue: string; session: LoginSession }> {
  const cookieValue = randomToken(32);
  const sid = randomToken(16);
  const idle = new Date(input.at.getTime() + input.idleTtl * 1000);
  const absolute = new Date(input.at.getTime() + input.absoluteTtl * 1000);
  await db
    .insertInto('login_sessions')
    .values({
      id_digest: digest(cookieValue),
      sid,
      user_id: input.userId,
      auth_time: input.at,
      created_at: input.at,
      last_seen_at: input.at,
      idle_expires_at: idle < absolute ? idle : absolute,
      absolute_expires_at: absolute,
      ip: input.ip?.slice(0, 64) ?? null,
      user_agent: input.userAgent?.slice(0, 256) ?? null,
    })
    .execute();
  return { cookieValue, session: { sid, userId: input.userId, authTime: input.at, idleExpiresAt: idle, absoluteExpiresAt: absolute } };
}

export interface SessionRow {
  id_digest: string;
  sid: string;
  user_id: string;
  auth_time: Date;
  idle_expires_at: Date;
  absolute_expires_at: Date;
  ended_at: Date | null;
  last_seen_at: Date;
}

/** The session row behind an id digest (ended or expired ones too). */
export async function loadSession(dbh: Pick<DbHandle, 'db' | 'prepared'>, idDigest: string): Promise<SessionRow | undefined> {
  const query = dbh.db
    .selectFrom('login_sessions')
    .select(['id_digest', 'sid', 'user_id', 'auth_time', 'idle_expires_at', 'absolute_expires_at', 'ended_at', 'last_seen_at'])
    .where('id_digest', '=', idDigest);
  const [row] = await dbh.prepared<SessionRow>('latchkey_session_find', query.compile());
  return row;
}

export interface SessionLookup {
  db: Kysely<Database>;
  /** Session rows by id digest (src/store/session-cache.ts). */
  sessions: { get(idDigest: string): Promise<SessionRow | undefined>; invalidate(idDigest?: string): void };
  /** Users by id, for the disabled flag (src/store/user-cache.ts). */
  users: { get(id: string): Promise<{ disabled: boolean } | undefined> };
}

/**
 * The live session behind a cookie value: not ended, not expired, its user not disabled. Slides
 * the idle expiry (bounded by the absolute one).
 */
export async function findLiveSession(deps: SessionLookup, cookieValue: string, at: Date, idleTtl: number): Promise<LoginSession | undefined> {
  const idDigest = digest(cookieValue);
  const row = await deps.sessions.get(idDigest);
  if (!row || row.ended_at) return undefined;
  if (row.idle_expires_at.getTime() <= at.getTime() || row.absolute_expires_at.getTime() <= at.getTime()) return undefined;
  const user = await deps.users.get(row.user_id);
  if (!user || user.disabled) return undefined;
  let idleExpiresAt = row.idle_expires_at;
  // slide the idle window, at most once a minute to spare writes
  if (at.getTime() - row.last_seen_at.getTime() > 60_000) {
    const next = new Date(Math.min(at.getTime() + idleTtl * 1000, row.absolute_expires_at.getTime()));
    await deps.db.updateTable('login_sessions').set({ last_seen_at: at, idle_expires_at: next }).where('id_digest', '=', idDigest).execute();
    // the trigger tells every replica; this one need not wait for it
    deps.sessions.invalidate(idDigest);
    idleExpiresAt = next;
  }
  return { sid: row.sid, userId: row.user_id, authTime: row.auth_time, idleExpiresAt, absoluteExpiresAt: row.absolute_expires_at };
}

export async function findSessionBySid(db: Kysely<Database>, sid: string) {
  return db.selectFrom('login_sessions').selectAll().where('sid', '=', sid).executeTakeFirst();
}

export async function endSessionByCookie(db: Kysely<Database>, cookieValue: string, at: Date): Promise<string | undefined> {
  const r = await db.updateTable('login_sessions').set({ ended_at: at }).where('id_digest', '=', digest(cookieValue)).where('ended_at', 'is', null).returning(['sid']).executeTakeFirst();
  return r?.sid;
}

export async function endSessionBySid(db: Kysely<Database>, sid: string, at: Date): Promise<boolean> {
  const r = await db.updateTable('login_sessions').set({ ended_at: at }).where('sid', '=', sid).where('ended_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Lock the user's live sessions: a code redemption holding one FOR SHARE is waited for (and its family then seen). */
export async function lockUserSessions(db: Kysely<Database>, userId: string): Promise<void> {
  await db.selectFrom('login_sessions').select('sid').where('user_id', '=', userId).where('ended_at', 'is', null).forUpdate().execute();
}

export async function endUserSessions(db: Kysely<Database>, userId: string, at: Date): Promise<number> {
  const r = await db.updateTable('login_sessions').set({ ended_at: at }).where('user_id', '=', userId).where('ended_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows);
}

// Login sessions: the browser holds an opaque 256-bit id in a signed cookie; we store its digest.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import type { DbHandle } from '../db/create-db.js';
import { digest, randomToken } from '../tokens/opaque.js';

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

/**
 * The live session behind a cookie value: not ended, not expired, its user not disabled. Slides
 * the idle expiry (bounded by the absolute one).
 */
export async function findLiveSession(dbh: Pick<DbHandle, 'db' | 'prepared'>, cookieValue: string, at: Date, idleTtl: number): Promise<LoginSession | undefined> {
  const { db } = dbh;
  const query = db
    .selectFrom('login_sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select(['s.id_digest', 's.sid', 's.user_id', 's.auth_time', 's.idle_expires_at', 's.absolute_expires_at', 's.ended_at', 's.last_seen_at', 'u.disabled'])
    .where('s.id_digest', '=', digest(cookieValue));
  type Row = Awaited<ReturnType<typeof query.executeTakeFirstOrThrow>>;
  const [row] = await dbh.prepared<Row>('latchkey_session_find', query.compile());
  if (!row || row.ended_at || row.disabled) return undefined;
  if (row.idle_expires_at.getTime() <= at.getTime() || row.absolute_expires_at.getTime() <= at.getTime()) return undefined;
  let idleExpiresAt = row.idle_expires_at;
  // slide the idle window, at most once a minute to spare writes
  if (at.getTime() - row.last_seen_at.getTime() > 60_000) {
    const next = new Date(Math.min(at.getTime() + idleTtl * 1000, row.absolute_expires_at.getTime()));
    await db.updateTable('login_sessions').set({ last_seen_at: at, idle_expires_at: next }).where('id_digest', '=', row.id_digest).execute();
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

export async function endUserSessions(db: Kysely<Database>, userId: string, at: Date): Promise<number> {
  const r = await db.updateTable('login_sessions').set({ ended_at: at }).where('user_id', '=', userId).where('ended_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows);
}

// The audit log: security events (logins, revocations, admin actions, user/client/key changes),
// never routine token issuance and never a secret.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';

export interface AuditEvent {
  type: string;
  actor?: string | null;
  userId?: string | null;
  clientId?: string | null;
  ip?: string | null;
  details?: Record<string, unknown>;
}

export async function recordAudit(db: Kysely<Database>, at: Date, e: AuditEvent): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      at,
      type: e.type,
      actor: e.actor ?? null,
      user_id: e.userId ?? null,
      client_id: e.clientId ?? null,
      ip: e.ip ?? null,
      details: JSON.stringify(e.details ?? {}),
    })
    .execute();
}

export interface AuditQuery {
  userId?: string;
  type?: string;
  since?: Date;
  until?: Date;
  limit?: number;
}

export async function listAudit(db: Kysely<Database>, q: AuditQuery) {
  let query = db.selectFrom('audit_events').selectAll();
  if (q.userId) query = query.where('user_id', '=', q.userId);
  if (q.type) query = query.where('type', '=', q.type);
  if (q.since) query = query.where('at', '>=', q.since);
  if (q.until) query = query.where('at', '<=', q.until);
  const rows = await query.orderBy('at', 'desc').orderBy('id', 'desc').limit(Math.min(q.limit ?? 100, 1000)).execute();
  return rows.map((r) => ({ id: String(r.id), at: r.at.toISOString(), type: r.type, actor: r.actor, user_id: r.user_id, client_id: r.client_id, ip: r.ip, details: r.details }));
}

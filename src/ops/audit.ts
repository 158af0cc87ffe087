// The audit log and the back-channel logout outbox, as admins read them.
import { isUuid } from '../core/vocabulary.js';
import { listAudit } from '../store/audit.js';
import { listNotices, type NoticeStatus } from '../store/logout-outbox.js';
import { parseLimit, parseTime, type OpsContext } from './context.js';
import { findUser } from './users.js';

export async function readAudit(ctx: OpsContext, q: { user?: string; type?: string; since?: string; until?: string; limit?: string }) {
  const since = parseTime(q.since, 'since');
  const until = parseTime(q.until, 'until');
  const limit = parseLimit(q.limit);
  // a deleted user's events are still found by their id
  const userId = q.user ? (isUuid(q.user) ? q.user : (await findUser(ctx, q.user)).id) : undefined;
  return listAudit(ctx.db, { userId, type: q.type, since, until, limit });
}

export async function readLogoutNotices(ctx: OpsContext, q: { status?: NoticeStatus; client?: string; limit?: string }) {
  return listNotices(ctx.db, { status: q.status, clientId: q.client, limit: parseLimit(q.limit) });
}

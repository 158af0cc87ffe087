// Grants (refresh-token families): what a user gave a client. The CLI calls them `sessions` for
// compatibility (`latchkey sessions list|revoke`), as does the admin API (/admin/…/sessions);
// "session" otherwise means the login session (src/store/login-sessions.ts).
import { revokeClientFamilies as revokeAllOfClient, revokeSession } from '../accounts/lifecycle.js';
import { findFamilyOwner, listFamilies, type FamilySummary } from '../store/refresh-families.js';
import { findClient } from '../store/clients.js';
import { audit, now, OpsError, type Actor, type OpsContext } from './context.js';
import { findUser } from './users.js';

export async function listGrants(ctx: OpsContext, q: { user?: string; client?: string; all?: boolean }): Promise<FamilySummary[]> {
  if (!q.user && !q.client) throw new OpsError('invalid_request', 'a user or a client is required');
  const userId = q.user ? (await findUser(ctx, q.user)).id : undefined;
  return listFamilies(ctx.db, { userId, clientId: q.client, includeRevoked: Boolean(q.all) });
}

export async function revokeGrant(ctx: OpsContext, who: Actor, familyId: string): Promise<{ id: string; revoked: true; already_revoked: boolean }> {
  const fam = await findFamilyOwner(ctx.db, familyId);
  if (!fam) throw new OpsError('not_found', `no such session: ${familyId}`);
  const revoked = await revokeSession(ctx.db, fam.id, now(ctx));
  await ctx.local?.syncDenylist();
  await audit(ctx, who, { type: 'admin.session_revoked', userId: fam.user_id, clientId: fam.client_id, details: { family_id: fam.id } });
  return { id: fam.id, revoked: true, already_revoked: !revoked };
}

export async function revokeClientGrants(ctx: OpsContext, who: Actor, clientId: string): Promise<{ client_id: string; families_revoked: number }> {
  if (!(await findClient(ctx.db, clientId))) throw new OpsError('not_found', `no such client: ${clientId}`);
  const n = await revokeAllOfClient(ctx.db, clientId, now(ctx));
  await ctx.local?.syncDenylist();
  await audit(ctx, who, { type: 'admin.client_sessions_revoked', clientId, details: { families_revoked: n } });
  return { client_id: clientId, families_revoked: n };
}

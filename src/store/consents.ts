// Remembered consent: per user and client, the scopes and the audiences (RFC 8707 resources) the
// user approved. A request is covered only when both its scopes and the audiences it can reach
// were approved before.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';

export interface Consent {
  scopes: string[];
  audiences: string[];
}

/**
 * The audiences an authorization request can reach, hence the ones its consent must cover: the
 * requested resources, or, without any, every audience of the client — a code issued without
 * `resource` may be exchanged at /token for any of them (RFC 8707 §2.2).
 */
export function audiencesToConsent(resources: string[], clientAudiences: string[]): string[] {
  return [...new Set(resources.length > 0 ? resources : clientAudiences)];
}

export async function findConsent(db: Kysely<Database>, userId: string, clientId: string): Promise<Consent> {
  const row = await db.selectFrom('consents').select(['scopes', 'audiences']).where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
  return { scopes: row?.scopes ?? [], audiences: row?.audiences ?? [] };
}

/** Does the remembered consent cover these scopes and audiences? */
export function consentCovers(consent: Consent, scopes: string[], audiences: string[]): boolean {
  const s = new Set(consent.scopes);
  const a = new Set(consent.audiences);
  return scopes.every((x) => s.has(x)) && audiences.every((x) => a.has(x));
}

export async function rememberConsent(db: Kysely<Database>, userId: string, clientId: string, approved: Consent, at: Date): Promise<void> {
  const existing = await findConsent(db, userId, clientId);
  const scopes = JSON.stringify([...new Set([...existing.scopes, ...approved.scopes])]);
  const audiences = JSON.stringify([...new Set([...existing.audiences, ...approved.audiences])]);
  await db
    .insertInto('consents')
    .values({ user_id: userId, client_id: clientId, scopes, audiences, updated_at: at })
    .onConflict((oc) => oc.columns(['user_id', 'client_id']).doUpdateSet({ scopes, audiences, updated_at: at }))
    .execute();
}

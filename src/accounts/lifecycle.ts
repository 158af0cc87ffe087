// What happens to a user's (or client's) sessions when an admin acts: every path that must end
// access revokes the families (refresh tokens dead, access tokens denylisted) and ends the login
// sessions, in one transaction.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import { endUserSessions, lockUserSessions } from '../store/login-sessions.js';
import { denylist, revokeFamiliesWhere, revokeFamily } from '../store/refresh-families.js';
import { statusDenyKey } from '../core/channels.js';
import { queueFamilyLogout, queueUserLogout } from '../store/logout-outbox.js';
import { deleteUser, lockUser, setPasswordHash, setUserDisabled } from '../store/users.js';
import { clientStatusIndex, deleteClient } from '../store/clients.js';
import { metrics, type RevocationCause } from '../core/metrics.js';

export interface EndedAccess {
  families_revoked: number;
  sessions_ended: number;
}

/** Counts what a committed transaction revoked. */
async function counted<T extends EndedAccess | number | boolean>(cause: RevocationCause, done: Promise<T>): Promise<T> {
  const result = await done;
  metrics.revocations.inc({ cause }, typeof result === 'number' ? result : typeof result === 'boolean' ? Number(result) : result.families_revoked);
  return result;
}

/**
 * Ends every family and login session of the user, atomically against a code redeemed or a login
 * completing at the same moment (each statement below is READ COMMITTED, so each sees what
 * committed before it ran):
 * - the user row is locked first, so a login re-checking its user (FOR SHARE) waits for this
 *   transaction and then sees the new password or the disabled flag;
 * - the live sessions are locked next: a redemption holding one FOR SHARE commits its family before
 *   this goes on, and one that comes later waits and then finds its session ended;
 * - sessions end before the families are revoked, so a family redeemed from a session that began
 *   after the lock is revoked too.
 */
async function endAllAccess(db: Kysely<Database>, userId: string, reason: RevocationCause, at: Date): Promise<EndedAccess> {
  await lockUser(db, userId, 'update');
  await lockUserSessions(db, userId);
  // Back-Channel Logout notices first: they are found among the families and sessions still live
  await queueUserLogout(db, userId, reason, at);
  const sessions = await endUserSessions(db, userId, at);
  const families = await revokeFamiliesWhere(db, { userId }, reason, at);
  return { families_revoked: families, sessions_ended: sessions };
}

export function logoutEverywhere(db: Kysely<Database>, userId: string, at: Date): Promise<EndedAccess> {
  return counted('logout_everywhere', db.transaction().execute((trx) => endAllAccess(trx, userId, 'logout_everywhere', at)));
}

export function disableUser(db: Kysely<Database>, userId: string, at: Date): Promise<EndedAccess> {
  return counted('user_disabled', db.transaction().execute(async (trx) => {
    await setUserDisabled(trx, userId, true, at);
    return endAllAccess(trx, userId, 'user_disabled', at);
  }));
}

export async function enableUser(db: Kysely<Database>, userId: string, at: Date): Promise<void> {
  await setUserDisabled(db, userId, false, at);
}

/** Change a password (already hashed by the caller) and end every session of the user. */
export function changePassword(db: Kysely<Database>, userId: string, passwordHash: string, at: Date): Promise<EndedAccess> {
  return counted('password_changed', db.transaction().execute(async (trx) => {
    await setPasswordHash(trx, userId, passwordHash, at);
    return endAllAccess(trx, userId, 'password_changed', at);
  }));
}

export function removeUser(db: Kysely<Database>, userId: string, at: Date): Promise<EndedAccess> {
  return counted('user_deleted', db.transaction().execute(async (trx) => {
    const ended = await endAllAccess(trx, userId, 'user_deleted', at);
    await deleteUser(trx, userId);
    return ended;
  }));
}

export function revokeClientFamilies(db: Kysely<Database>, clientId: string, at: Date): Promise<number> {
  return counted('client_revoked', db.transaction().execute(async (trx) => {
    await queueFamilyLogout(trx, { clientId }, 'client_revoked', at);
    return revokeFamiliesWhere(trx, { clientId }, 'client_revoked', at);
  }));
}

/** An admin revokes one family (a "session" in the admin API and CLI); false when it already was. */
export function revokeSession(db: Kysely<Database>, familyId: string, at: Date): Promise<boolean> {
  return counted('admin', db.transaction().execute(async (trx) => {
    await queueFamilyLogout(trx, { familyIds: [familyId] }, 'admin', at);
    return revokeFamily(trx, familyId, 'admin', at);
  }));
}

/**
 * Delete a client: its families are revoked first (access tokens denylisted); its outstanding
 * codes die with it (they are redeemed only by the client); its client_credentials tokens' status
 * index is set in the status lists until the last of them (`accessTokenTtl`) has expired.
 */
export function removeClient(db: Kysely<Database>, clientId: string, at: Date, accessTokenTtl: number): Promise<number> {
  return counted('client_deleted', db.transaction().execute(async (trx) => {
    const n = await revokeFamiliesWhere(trx, { clientId }, 'client_deleted', at);
    const idx = await clientStatusIndex(trx, clientId);
    if (idx !== undefined) await denylist(trx, [{ jti: statusDenyKey(idx), exp: Math.floor(at.getTime() / 1000) + accessTokenTtl, statusIdx: idx }], at);
    await deleteClient(trx, clientId);
    return n;
  }));
}

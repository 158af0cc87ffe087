// Users: one implementation of each admin operation on them (CLI `latchkey users …`, the admin
// API /admin/users/…). Ending access goes through src/accounts/lifecycle.ts, atomically.
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../accounts/passwords.js';
import { changePassword, disableUser as disable, enableUser as enable, logoutEverywhere as endEverywhere, removeUser, type EndedAccess } from '../accounts/lifecycle.js';
import { findUserById, findUserByIdOrEmail, insertUser, isValidEmail, listUsers as allUsers, publicUser } from '../store/users.js';
import type { User } from '../db/types.js';
import { audit, now, OpsError, type Actor, type OpsContext } from './context.js';

export type PublicUser = ReturnType<typeof publicUser>;

export async function findUser(ctx: OpsContext, ref: string | undefined): Promise<User> {
  if (!ref) throw new OpsError('invalid_request', 'a user id or email is required');
  const user = await findUserByIdOrEmail(ctx.db, ref);
  if (!user) throw new OpsError('not_found', `no such user: ${ref}`);
  return user;
}

export function checkPassword(password: string | undefined): string {
  if (password === undefined || password === '') throw new OpsError('invalid_request', 'a password is required');
  if (password.length < MIN_PASSWORD_LENGTH) throw new OpsError('invalid_request', `the password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH) throw new OpsError('invalid_request', `the password must be at most ${MAX_PASSWORD_LENGTH} characters`);
  return password;
}

export async function getUser(ctx: OpsContext, ref: string): Promise<PublicUser> {
  return publicUser(await findUser(ctx, ref));
}

export async function listUsers(ctx: OpsContext): Promise<PublicUser[]> {
  return (await allUsers(ctx.db)).map(publicUser);
}

export async function createUser(ctx: OpsContext, who: Actor, input: { email: string | undefined; name?: string; emailVerified?: boolean; password: string | undefined }): Promise<{ id: string; email: string }> {
  const email = input.email?.trim();
  if (!email) throw new OpsError('invalid_request', 'an email is required');
  if (!isValidEmail(email)) throw new OpsError('invalid_request', `invalid email: ${email}`);
  const password = checkPassword(input.password);
  const name = input.name?.trim();
  if (name !== undefined && (name.length === 0 || name.length > 200)) throw new OpsError('invalid_request', 'the name must be 1 to 200 characters');
  if (await findUserByIdOrEmail(ctx.db, email)) throw new OpsError('conflict', `a user with the email ${email} already exists`);
  const passwordHash = await ctx.passwords.hash(password);
  let user: User;
  try {
    user = await insertUser(ctx.db, { email, name: name ?? null, emailVerified: Boolean(input.emailVerified), passwordHash }, now(ctx));
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new OpsError('conflict', `a user with the email ${email} already exists`);
    throw err;
  }
  await audit(ctx, who, { type: 'admin.user_created', userId: user.id });
  return { id: user.id, email: user.email };
}

/**
 * After a committed change: the users and sessions triggers NOTIFY every replica at commit; this
 * one also drops its copies and, when access ended, reads the denylist before it answers.
 */
async function afterUserChange(ctx: OpsContext, userId: string, ended: boolean): Promise<void> {
  ctx.local?.userChanged(userId);
  if (ended) await ctx.local?.syncDenylist();
}

export async function disableUser(ctx: OpsContext, who: Actor, ref: string): Promise<PublicUser & EndedAccess> {
  const user = await findUser(ctx, ref);
  const ended = await disable(ctx.db, user.id, now(ctx));
  await afterUserChange(ctx, user.id, true);
  await audit(ctx, who, { type: 'admin.user_disabled', userId: user.id, details: { ...ended } });
  return { ...publicUser({ ...user, disabled: true }), ...ended };
}

export async function enableUser(ctx: OpsContext, who: Actor, ref: string): Promise<PublicUser> {
  const user = await findUser(ctx, ref);
  await enable(ctx.db, user.id, now(ctx));
  await afterUserChange(ctx, user.id, false);
  await audit(ctx, who, { type: 'admin.user_enabled', userId: user.id });
  return publicUser((await findUserById(ctx.db, user.id)) ?? { ...user, disabled: false });
}

export async function setPassword(ctx: OpsContext, who: Actor, ref: string, password: string | undefined): Promise<{ user_id: string; email: string } & EndedAccess> {
  const user = await findUser(ctx, ref);
  const hash = await ctx.passwords.hash(checkPassword(password));
  const ended = await changePassword(ctx.db, user.id, hash, now(ctx));
  await afterUserChange(ctx, user.id, true);
  await audit(ctx, who, { type: 'admin.password_changed', userId: user.id, details: { ...ended } });
  return { user_id: user.id, email: user.email, ...ended };
}

export async function logoutEverywhere(ctx: OpsContext, who: Actor, ref: string): Promise<{ user_id: string } & EndedAccess> {
  const user = await findUser(ctx, ref);
  const ended = await endEverywhere(ctx.db, user.id, now(ctx));
  await afterUserChange(ctx, user.id, true);
  await audit(ctx, who, { type: 'admin.logout_everywhere', userId: user.id, details: { ...ended } });
  return { user_id: user.id, ...ended };
}

export async function deleteUser(ctx: OpsContext, who: Actor, ref: string): Promise<{ id: string; email: string; deleted: true } & EndedAccess> {
  const user = await findUser(ctx, ref);
  const ended = await removeUser(ctx.db, user.id, now(ctx));
  await afterUserChange(ctx, user.id, true);
  await audit(ctx, who, { type: 'admin.user_deleted', userId: user.id, details: { email: user.email, ...ended } });
  return { id: user.id, email: user.email, deleted: true, ...ended };
}

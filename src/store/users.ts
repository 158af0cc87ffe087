// Repository functions for users; they take `db | trx` first, the caller opens transactions.
import type { Kysely } from 'kysely';
import type { Database, User } from '../db/types.js';

import { isUuid } from '../core/vocabulary.js';
export { isUuid };

// A pragmatic email check: one @, no spaces, a dot in the domain, within RFC 5321 lengths.
export function isValidEmail(email: string): boolean {
  return email.length <= 254 && /^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/.test(email);
}

export async function findUserById(db: Kysely<Database>, id: string): Promise<User | undefined> {
  if (!isUuid(id)) return undefined;
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findUserByEmail(db: Kysely<Database>, email: string): Promise<User | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .executeTakeFirst();
}

export async function findUserByIdOrEmail(db: Kysely<Database>, ref: string): Promise<User | undefined> {
  return isUuid(ref) ? findUserById(db, ref) : findUserByEmail(db, ref);
}

export interface CreateUserInput {
  email: string;
  name?: string | null;
  emailVerified?: boolean;
  passwordHash: string;
}

export async function insertUser(db: Kysely<Database>, input: CreateUserInput, at: Date): Promise<User> {
  return db
    .insertInto('users')
    .values({
      email: input.email,
      name: input.name ?? null,
      email_verified: input.emailVerified ?? false,
      password_hash: input.passwordHash,
      created_at: at,
      updated_at: at,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function listUsers(db: Kysely<Database>): Promise<User[]> {
  return db.selectFrom('users').selectAll().orderBy('created_at').orderBy('email').execute();
}

export async function setUserDisabled(db: Kysely<Database>, id: string, disabled: boolean, at: Date): Promise<User | undefined> {
  return db.updateTable('users').set({ disabled, updated_at: at }).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function setPasswordHash(db: Kysely<Database>, id: string, passwordHash: string, at: Date): Promise<void> {
  await db.updateTable('users').set({ password_hash: passwordHash, updated_at: at }).where('id', '=', id).execute();
}

/**
 * Lock the user row for the rest of the transaction. `update` (FOR NO KEY UPDATE) is taken by every
 * path that ends all of a user's access; `share` (FOR SHARE) by a login creating a session, so the
 * two serialize on the row — while the foreign keys' KEY SHARE locks (a family or session inserted
 * for the user) conflict with neither, which keeps a concurrent code redemption from deadlocking.
 */
export async function lockUser(db: Kysely<Database>, id: string, mode: 'update' | 'share'): Promise<Pick<User, 'password_hash' | 'disabled'> | undefined> {
  const q = db.selectFrom('users').select(['password_hash', 'disabled']).where('id', '=', id);
  return (mode === 'update' ? q.forNoKeyUpdate() : q.forShare()).executeTakeFirst();
}

export async function deleteUser(db: Kysely<Database>, id: string): Promise<boolean> {
  const r = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** The user as shown by the CLI and admin API: never the password hash. */
export function publicUser(u: User): { id: string; email: string; email_verified: boolean; name: string | null; disabled: boolean; created_at: string } {
  return { id: u.id, email: u.email, email_verified: u.email_verified, name: u.name, disabled: u.disabled, created_at: u.created_at.toISOString() };
}

/** Rows in a table, for the start-up message. */
export async function countRows(db: Kysely<Database>, table: 'users' | 'clients'): Promise<number> {
  const r = await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirst();
  return Number(r?.n ?? 0);
}

// Runs migrations/*.sql in name order, each in its own transaction, under a session-level
// advisory lock so that replicas starting at once on one database never race.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely } from 'kysely';

const MIGRATION_LOCK_ID = 7_370_001; // arbitrary, constant across versions
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

export interface MigrationFile {
  name: string;
  statements: string[];
}

export function splitStatements(text: string): string[] {
  const withoutComments = text
    .split('\n')
    .filter((line) => !/^\s*--/.test(line))
    .join('\n');
  return withoutComments
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function readMigrations(dir = MIGRATIONS_DIR): MigrationFile[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^\d{14}_[a-z0-9_-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ name: f.replace(/\.sql$/, ''), statements: splitStatements(fs.readFileSync(path.join(dir, f), 'utf8')) }));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function migrate(db: Kysely<any>, dir = MIGRATIONS_DIR): Promise<string[]> {
  const migrations = readMigrations(dir);
  return db.connection().execute(async (conn) => {
    await sql`SELECT pg_advisory_lock(${MIGRATION_LOCK_ID})`.execute(conn);
    try {
      await sql`CREATE TABLE IF NOT EXISTS latchkey_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`.execute(conn);
      const done = new Set((await sql<{ name: string }>`SELECT name FROM latchkey_migrations`.execute(conn)).rows.map((r) => r.name));
      const applied: string[] = [];
      for (const m of migrations) {
        if (done.has(m.name)) continue;
        await conn.transaction().execute(async (trx) => {
          for (const stmt of m.statements) await sql.raw(stmt).execute(trx);
          await sql`INSERT INTO latchkey_migrations (name) VALUES (${m.name})`.execute(trx);
        });
        applied.push(m.name);
      }
      return applied;
    } finally {
      await sql`SELECT pg_advisory_unlock(${MIGRATION_LOCK_ID})`.execute(conn);
    }
  });
}

/** The migrations this build knows of that the database has not applied yet. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function pendingMigrations(db: Kysely<any>, dir = MIGRATIONS_DIR): Promise<string[]> {
  const known = readMigrations(dir).map((m) => m.name);
  let done: Set<string>;
  try {
    done = new Set((await sql<{ name: string }>`SELECT name FROM latchkey_migrations`.execute(db)).rows.map((r) => r.name));
  } catch {
    return known;
  }
  return known.filter((n) => !done.has(n));
}

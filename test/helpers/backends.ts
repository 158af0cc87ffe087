// Every storage-touching test runs on PGlite (in memory) and, when DATABASE_URL names a Postgres
// server, on Postgres too, each test file in a database of its own.
import crypto from 'node:crypto';
import pg from 'pg';

export interface Backend {
  name: 'pglite' | 'postgres';
  /** A DATABASE_URL for a fresh, empty database. */
  create(): Promise<string>;
}

const PG_URL = process.env.DATABASE_URL && /^postgres(ql)?:\/\//.test(process.env.DATABASE_URL) ? process.env.DATABASE_URL : undefined;
const created: string[] = [];

export const pglite: Backend = { name: 'pglite', create: async () => 'memory:' };

export const postgres: Backend = {
  name: 'postgres',
  async create() {
    if (!PG_URL) throw new Error('DATABASE_URL is not a postgres:// URL');
    const name = `latchkey_t_${crypto.randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    created.push(name);
    const u = new URL(PG_URL);
    u.pathname = `/${name}`;
    return u.href;
  },
};

export const hasPostgres = Boolean(PG_URL);

/** The backends this run covers; Postgres only when DATABASE_URL is set. */
export function backends(): Backend[] {
  return PG_URL ? [pglite, postgres] : [pglite];
}

export const POSTGRES_SKIP_REASON = 'needs a Postgres server: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test (apt-get install postgresql)';

/** For tests that only make sense on Postgres: `{ skip: postgresOnly }`. In CI (CI_REQUIRE_ALL) they never skip. */
export const postgresOnly: string | false = PG_URL || process.env.CI_REQUIRE_ALL ? false : POSTGRES_SKIP_REASON;

/** Drop the databases this process created (call from t.teardown at the top level). */
export async function dropCreatedDatabases(): Promise<void> {
  if (!PG_URL || created.length === 0) return;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    for (const name of created.splice(0)) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
  } finally {
    await admin.end();
  }
}

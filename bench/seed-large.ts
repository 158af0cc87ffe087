// Seeds a Latchkey database with a large, mostly expired history, for the "cost flat as data grows"
// measurement of issue 6: refresh throughput with 1,000,000 refresh families and 1,000,000 denylist
// rows must stay within 15% of the empty-table figure.
//
//   node --import tsx bench/seed-large.ts --database-url postgres://postgres@127.0.0.1:5432/latchkey_bench_large \
//     --client-id <web client_id> --user-id <user uuid> [--families 1000000] [--denylist 1000000] [--expired 0.9]
//
// bench/run.ts --large calls seedLarge() itself on a separate database, after `latchkey migrate` and the
// bench's user and clients exist (the rows reference them).
//
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { NotAvailable } from './lib/oauth.js';

export const SCHEMA_READY = true;

export interface SeedOptions {
  databaseUrl: string;
  /** the client and user the seeded families belong to (foreign keys) */
  clientId: string;
  userId: string;
  families: number;
  denylist: number;
  /** share of rows already expired (the prune job's work); the rest expire in the future */
  expiredFraction: number;
  /** rows per INSERT (each its own transaction) */
  batch: number;
  log?: (line: string) => void;
}

export const DEFAULTS = { families: 1_000_000, denylist: 1_000_000, expiredFraction: 0.9, batch: 100_000 } as const;

interface TableSeed {
  table: string;
  rows(o: SeedOptions): number;
  /**
   * One batch: rows g = $1 .. $2 (inclusive). Parameters: $1 from, $2 to, $3 client_id, $4 user_id,
   * $5 expired fraction (row g is expired when g <= $5 * total), $6 total rows of this table.
   * Expired rows get expires_at in the past (spread over 30 days), live ones in the future.
   */
  sql: string;
}

// The schema of migrations/20261124000300_refresh_families.sql (and 000700). Expired families are past their
// absolute expiry (the prune job's work); live ones run for another 14 days.
export const TABLES: TableSeed[] = [
  {
    table: 'refresh_families',
    rows: (o) => o.families,
    sql: `INSERT INTO refresh_families (id, user_id, client_id, scopes, resources, auth_time, session_sid, offline, code_digest,
        created_at, last_used_at, idle_expires_at, absolute_expires_at, revoked_at, access_expires_at)
      SELECT md5('seed-family-' || g)::uuid, $4::uuid, $3, '["openid","offline_access"]'::jsonb, '[]'::jsonb,
             now() - interval '31 days', NULL, true, NULL,
             now() - interval '31 days', now() - interval '1 day',
             CASE WHEN g <= $5::float8 * $6::int THEN now() - (g % 43200) * interval '1 minute' ELSE now() + interval '14 days' END,
             CASE WHEN g <= $5::float8 * $6::int THEN now() - (g % 43200) * interval '1 minute' ELSE now() + interval '14 days' END,
             NULL, now() - interval '1 day' + interval '15 minutes'
      FROM generate_series($1::int, $2::int) AS g`,
  },
  {
    table: 'refresh_tokens',
    rows: (o) => o.families,
    sql: `INSERT INTO refresh_tokens (token_digest, family_id, created_at, consumed_at)
      SELECT encode(sha256(('seed-rt-' || g)::bytea), 'base64'), md5('seed-family-' || g)::uuid, now() - interval '31 days', NULL
      FROM generate_series($1::int, $2::int) AS g
      WHERE $3::text IS NOT NULL AND $4::text IS NOT NULL AND $5::float8 >= 0 AND $6::int > 0`,
  },
  {
    table: 'denylist',
    rows: (o) => o.denylist,
    sql: `INSERT INTO denylist (jti, expires_at)
      SELECT 'seed-' || g,
             CASE WHEN g <= $5::float8 * $6::int THEN now() - (g % 43200) * interval '1 minute'
                  ELSE now() + interval '15 minutes' END
      FROM generate_series($1::int, $2::int) AS g
      WHERE $3::text IS NOT NULL AND $4::text IS NOT NULL`,
  },
];

export async function seedLarge(o: SeedOptions): Promise<{ table: string; rows: number; ms: number }[]> {
  if (!SCHEMA_READY) throw new NotAvailable('schema pending: fill in TABLES in bench/seed-large.ts');
  const log = o.log ?? (() => {});
  const client = new pg.Client({ connectionString: o.databaseUrl });
  await client.connect();
  const done: { table: string; rows: number; ms: number }[] = [];
  try {
    for (const t of TABLES) {
      const total = t.rows(o);
      const t0 = performance.now();
      for (let from = 1; from <= total; from += o.batch) {
        const to = Math.min(total, from + o.batch - 1);
        await client.query(t.sql, [from, to, o.clientId, o.userId, o.expiredFraction, total]);
        log(`seed ${t.table}: ${to.toLocaleString('en-US')} / ${total.toLocaleString('en-US')}`);
      }
      await client.query(`ANALYZE ${pg.escapeIdentifier(t.table)}`);
      done.push({ table: t.table, rows: total, ms: performance.now() - t0 });
    }
  } finally {
    await client.end();
  }
  return done;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'database-url': { type: 'string' },
      'client-id': { type: 'string' },
      'user-id': { type: 'string' },
      families: { type: 'string' },
      denylist: { type: 'string' },
      expired: { type: 'string' },
      batch: { type: 'string' },
    },
  });
  const databaseUrl = values['database-url'];
  const clientId = values['client-id'];
  const userId = values['user-id'];
  if (!databaseUrl || !clientId || !userId) throw new Error('--database-url, --client-id and --user-id are required');
  if (!/^postgres(ql)?:\/\/[^/]*@?(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(databaseUrl)) throw new Error('the seeder only writes to a loopback Postgres');
  const result = await seedLarge({
    databaseUrl,
    clientId,
    userId,
    families: Number(values.families ?? DEFAULTS.families),
    denylist: Number(values.denylist ?? DEFAULTS.denylist),
    expiredFraction: Number(values.expired ?? DEFAULTS.expiredFraction),
    batch: Number(values.batch ?? DEFAULTS.batch),
    log: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`seed-large: ${(err as Error).message}\n`);
    process.exit(1);
  });
}

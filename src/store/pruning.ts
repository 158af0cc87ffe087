// Expired rows are pruned in bounded batches by a background job: each batch is one short
// transaction deleting at most BATCH rows through an index, so requests are never blocked, and an
// advisory lock makes one replica at a time do it.
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import { DENYLIST_RETENTION_SECONDS } from '../core/channels.js';

const PRUNE_LOCK_ID = 7_370_003;
const DAY = 86_400_000;

export interface PruneResult {
  [table: string]: number;
}

export interface PruneOptions {
  /** Audit events older than this many days are deleted (AUDIT_RETENTION_DAYS, default 90). */
  auditRetentionDays?: number;
}

interface Target {
  table: string;
  key: string;
  where: (now: Date, opts: Required<PruneOptions>) => ReturnType<typeof sql>;
}

const TARGETS: Target[] = [
  // an entry outlives its token's exp by the clock leeway (the token is still accepted until then)
  { table: 'denylist', key: 'jti', where: (now) => sql`expires_at < ${new Date(now.getTime() - DENYLIST_RETENTION_SECONDS * 1000)}` },
  { table: 'interactions', key: 'id_digest', where: (now) => sql`expires_at < ${now}` },
  { table: 'client_assertion_jtis', key: 'jti', where: (now) => sql`expires_at < ${now}` },
  { table: 'dpop_proofs', key: 'jti_digest', where: (now) => sql`expires_at < ${now}` },
  { table: 'login_sessions', key: 'id_digest', where: (now) => sql`absolute_expires_at < ${new Date(now.getTime() - DAY)} OR ended_at < ${new Date(now.getTime() - DAY)}` },
  // Back-Channel Logout notices: an hour after delivery (for `logout-notices list`), failed ones after 30 days
  { table: 'logout_notices', key: 'id', where: (now) => sql`delivered_at < ${new Date(now.getTime() - 3_600_000)} OR failed_at < ${new Date(now.getTime() - 30 * DAY)}` },
  // families (and, by cascade, their tokens) a week after they can no longer be used
  { table: 'refresh_families', key: 'id', where: (now) => sql`absolute_expires_at < ${new Date(now.getTime() - 7 * DAY)} OR revoked_at < ${new Date(now.getTime() - 30 * DAY)}` },
  { table: 'audit_events', key: 'id', where: (now, o) => sql`at < ${new Date(now.getTime() - o.auditRetentionDays * DAY)}` },
];

/** One pass over every table, at most `maxBatches` batches of `batch` rows each per table. */
export async function pruneExpired(db: Kysely<Database>, now: Date, batch = 1000, maxBatches = 20, options: PruneOptions = {}): Promise<PruneResult | undefined> {
  const opts: Required<PruneOptions> = { auditRetentionDays: options.auditRetentionDays ?? 90 };
  const result: PruneResult = {};
  for (const t of TARGETS) {
    result[t.table] = 0;
    for (let i = 0; i < maxBatches; i++) {
      const deleted = await db.transaction().execute(async (trx) => {
        const locked = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${PRUNE_LOCK_ID}) AS ok`.execute(trx);
        if (!locked.rows[0]?.ok) return -1;
        const r = await sql`DELETE FROM ${sql.table(t.table)} WHERE ${sql.ref(t.key)} IN (SELECT ${sql.ref(t.key)} FROM ${sql.table(t.table)} WHERE ${t.where(now, opts)} LIMIT ${batch})`.execute(trx);
        return Number(r.numAffectedRows ?? 0n);
      });
      if (deleted < 0) return undefined; // another replica is pruning
      result[t.table]! += deleted;
      if (deleted < batch) break;
    }
  }
  return result;
}

export function startPruning(db: Kysely<Database>, now: () => Date, intervalMs: number, onError: (err: Error) => void, opts: PruneOptions = {}): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    pruneExpired(db, now(), undefined, undefined, opts)
      .catch(onError)
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

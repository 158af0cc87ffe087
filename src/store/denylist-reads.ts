// The reads behind each replica's denylist view (src/tokens/denylist-view.ts) and status lists
// (src/tokens/status-list.ts). The writes are in src/store/refresh-families.ts (`denylist`).
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/types.js';

/** Is any of these keys (a jti, a family or status key) on the denylist? One query. */
export async function anyDenied(db: Kysely<Database>, keys: string[]): Promise<boolean> {
  return Boolean(await db.selectFrom('denylist').select('jti').where('jti', 'in', keys).limit(1).executeTakeFirst());
}

export interface DenylistPageRow {
  xmin: string;
  jti: string | null;
  expires_at: Date | null;
  txid: string | null;
}

/**
 * One page of denylist rows written by transactions from `fromTxid` on, still live after `cutoff`,
 * in (txid, jti) order after `cursor`; every row also carries the oldest transaction still running
 * when the page was read (the first row only, when there is none).
 */
export async function denylistPage(db: Kysely<Database>, fromTxid: string, cutoff: Date, cursor: { txid: string; jti: string } | undefined, limit: number): Promise<DenylistPageRow[]> {
  const after = cursor ? sql`AND (txid, jti) > (${cursor.txid}::xid8, ${cursor.jti})` : sql``;
  const { rows } = await sql<DenylistPageRow>`
        WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin)
        SELECT s.xmin, d.jti, d.expires_at, d.txid::text AS txid FROM s LEFT JOIN LATERAL (
          SELECT jti, expires_at, txid FROM denylist
          WHERE txid >= ${fromTxid}::xid8 AND expires_at > ${cutoff} ${after}
          ORDER BY txid, jti LIMIT ${limit}
        ) d ON true`.execute(db);
  return rows;
}

/** The status indexes handed out so far (last) and the lowest one a live row still holds (min). */
export async function statusIndexRange(db: Kysely<Database>): Promise<{ last: number; min: number }> {
  const range = await sql<{ last: string | null; min: string | null }>`
        SELECT (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM status_index_seq)::text AS last,
               LEAST((SELECT min(status_idx) FROM refresh_families), (SELECT min(cc_status_idx) FROM clients),
                     (SELECT min(status_idx) FROM denylist WHERE status_idx IS NOT NULL))::text AS min`.execute(db);
  return { last: Number(range.rows[0]?.last ?? -1), min: Number(range.rows[0]?.min ?? 0) };
}

/** The status indexes of denylist entries still live after `cutoff`. */
export async function revokedStatusIndexes(db: Kysely<Database>, cutoff: Date): Promise<number[]> {
  const rows = await db.selectFrom('denylist').select('status_idx').where('status_idx', 'is not', null).where('expires_at', '>', cutoff).execute();
  return rows.map((r) => Number(r.status_idx));
}

// The in-process view of the access-token denylist. Every replica keeps it current from Postgres:
// LISTEN/NOTIFY (latchkey_denylist) triggers an incremental read within milliseconds, a poll every
// few seconds is the safety net, and after the notification connection was lost the view
// answers from the database until a full resync completes (from memory, within the outage grace,
// while the database is unreachable too: src/db/health.ts). Memory is bounded: entries leave
// when their token can no longer be accepted, and past `maxEntries` the view answers from the
// database instead of growing.
//
// New rows are found in commit order, not sequence order: a long revoking transaction writes its
// rows early and commits late, after shorter ones. Each row carries the id of the transaction
// that wrote it (`txid`, migration 20261201000100); each read also takes the oldest transaction
// still running in its snapshot (pg_snapshot_xmin), and the next read starts there. Every row the
// previous read could not see belongs to a transaction at least that new, so none is skipped.
import type { Kysely } from 'kysely';
import { anyDenied, denylistPage } from '../store/denylist-reads.js';
import type { Database } from '../db/types.js';
import type { DbHandle } from '../db/create-db.js';
import type { Clock } from '../core/clock.js';
import type { DbHealth } from '../db/health.js';
import { DENYLIST_CHANNEL, DENYLIST_RETENTION_SECONDS } from '../core/channels.js';

const PAGE = 5000;
const RETENTION_MS = DENYLIST_RETENTION_SECONDS * 1000;

export interface DenylistViewOptions {
  pollMs?: number;
  maxEntries?: number;
  onError?: (err: Error) => void;
  /** While the database is unreachable, memory answers within the outage grace (src/db/health.ts). */
  health?: Pick<DbHealth, 'servesFromMemory'>;
}

export class DenylistView {
  private entries = new Map<string, number>();
  /** Rows written by this transaction id or later may not all have been visible to the last read. */
  private fromTxid = '0';
  private stale = true;
  private listening = true;
  private overflow = false;
  // bumped by every full reload: a read that started before it must not write into the new view
  private generation = 0;
  private syncing: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
    private readonly opts: DenylistViewOptions = {},
  ) {}

  async start(dbh: DbHandle): Promise<void> {
    this.unlisten = await dbh.listen(
      DENYLIST_CHANNEL,
      () => void this.sync().catch((e: Error) => this.opts.onError?.(e)),
      () => {
        // notifications may have been missed while disconnected: trust nothing until resynced
        this.listening = true;
        this.stale = true;
        void this.resync().catch((e: Error) => this.opts.onError?.(e));
      },
      () => {
        // the notification connection is down: answer from the database until it is back and the
        // view resynced, or, while the database is unreachable too, from memory within the outage
        // grace. `stale` stays as it was: it says whether memory held everything when the
        // notifications stopped (the poll keeps reading increments meanwhile).
        this.listening = false;
      },
    );
    await this.resync();
    // a resync that failed (the database was away) is retried by the poll until the view is current
    this.timer = setInterval(() => void (this.stale ? this.resync() : this.sync()).catch((e: Error) => this.opts.onError?.(e)), this.opts.pollMs ?? 5000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.unlisten?.();
  }

  /** Not answering from memory: a full resync is pending, memory overflowed, or notifications are down. */
  get isStale(): boolean {
    return this.stale || this.overflow || !this.listening;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Is any of these keys (a jti, a family key) denylisted? From memory when the view is current,
   * else from the database in one query.
   */
  async isDenied(...keys: string[]): Promise<boolean> {
    const now = this.clock.now();
    const fromMemory = !this.stale && !this.overflow && (this.listening || this.opts.health?.servesFromMemory() === true);
    if (!fromMemory) {
      return anyDenied(this.db, keys);
    }
    for (const key of keys) {
      const exp = this.entries.get(key);
      if (exp !== undefined && exp > now - RETENTION_MS) return true;
    }
    return false;
  }

  /** Full reload (at start and after a lost notification connection). */
  async resync(): Promise<void> {
    this.stale = true;
    this.generation++;
    this.fromTxid = '0';
    this.entries.clear();
    this.overflow = false;
    await this.sync();
    this.stale = false;
  }

  /** Read what is new since the last read; concurrent calls coalesce. */
  sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.again = false;
          await this.readNew();
        } while (this.again);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  private async readNew(): Promise<void> {
    const generation = this.generation;
    const now = this.clock.now();
    const max = this.opts.maxEntries ?? 1_000_000;
    // forget entries whose tokens can no longer be accepted (past exp + the largest clock leeway),
    // first, to make room for what follows
    for (const [jti, exp] of this.entries) if (exp <= now - RETENTION_MS) this.entries.delete(jti);
    const cutoff = new Date(now - RETENTION_MS);
    const from = this.fromTxid;
    let next: string | undefined;
    let cursor: { txid: string; jti: string } | undefined;
    let full = false;
    for (;;) {
      const rows = await denylistPage(this.db, from, cutoff, cursor, PAGE);
      // a full reload began while we read: what we read belongs to the old view
      if (generation !== this.generation) return;
      // the first page's snapshot is the oldest: start the next read at its oldest running transaction
      next ??= rows[0]?.xmin;
      let last: { txid: string; jti: string } | undefined;
      for (const r of rows) {
        if (r.jti === null || r.txid === null || r.expires_at === null) continue;
        if (this.entries.size >= max && !this.entries.has(r.jti)) {
          full = true;
          break;
        }
        this.entries.set(r.jti, r.expires_at.getTime());
        last = { txid: r.txid, jti: r.jti };
      }
      if (full || !last || rows.length < PAGE) break;
      cursor = last;
    }
    // memory answers again only once a read got everything; while full, the next read starts
    // where this one did, so the rows skipped are read then
    if (!full && next !== undefined) this.fromTxid = next;
    this.overflow = full;
  }
}

// The in-process view of the access-token denylist. Every replica keeps it current from Postgres:
// LISTEN/NOTIFY (latchkey_denylist) triggers an incremental read within milliseconds, a poll every
// few seconds is the safety net, and after the notification connection was lost the view
// answers from the database until a full resync completes (from memory, within the outage grace,
// while the database is unreachable too: src/db/health.ts). Memory is bounded:
// entries leave when their token expires, and past `maxEntries` the view answers from the
// database instead of growing.
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import type { DbHandle } from '../db/create-db.js';
import type { Clock } from '../clock.js';
import type { DbHealth } from '../db/health.js';
import { DENYLIST_CHANNEL } from '../store/refresh-families.js';

// sequence values may commit out of order: re-read a window behind the last one seen
const SEQ_OVERLAP = 1000n;

export interface DenylistViewOptions {
  pollMs?: number;
  maxEntries?: number;
  onError?: (err: Error) => void;
  /** While the database is unreachable, memory answers within the outage grace (src/db/health.ts). */
  health?: Pick<DbHealth, 'servesFromMemory'>;
}

export class DenylistView {
  private entries = new Map<string, number>();
  private lastSeq = 0n;
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
      const row = await this.db.selectFrom('denylist').select('jti').where('jti', 'in', keys).limit(1).executeTakeFirst();
      return Boolean(row);
    }
    for (const key of keys) {
      const exp = this.entries.get(key);
      if (exp !== undefined && exp > now - 60_000) return true;
    }
    return false;
  }

  /** Full reload (at start and after a lost notification connection). */
  async resync(): Promise<void> {
    this.stale = true;
    this.generation++;
    this.lastSeq = 0n;
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
    // forget entries whose tokens have expired (they can no longer pass verification anyway),
    // first, to make room for what follows
    for (const [jti, exp] of this.entries) if (exp <= now - 60_000) this.entries.delete(jti);
    let full = false;
    for (;;) {
      const from = this.lastSeq > SEQ_OVERLAP ? this.lastSeq - SEQ_OVERLAP : 0n;
      const rows = await this.db
        .selectFrom('denylist')
        .select(['jti', 'expires_at', 'seq'])
        .where('seq', '>', sql<string>`${from.toString()}::bigint`)
        .where('expires_at', '>', new Date(now))
        .orderBy('seq')
        .limit(5000)
        .execute();
      // a full reload began while we read: what we read belongs to the old view
      if (generation !== this.generation) return;
      let maxSeq = this.lastSeq;
      for (const r of rows) {
        if (this.entries.size >= max && !this.entries.has(r.jti)) {
          full = true;
          break;
        }
        this.entries.set(r.jti, r.expires_at.getTime());
        const s = BigInt(r.seq);
        if (s > maxSeq) maxSeq = s;
      }
      const advanced = maxSeq > this.lastSeq;
      this.lastSeq = maxSeq;
      if (rows.length < 5000 || !advanced || full) break;
    }
    // memory answers again only once a read got everything: rows skipped while full are past
    // lastSeq and are read by the next sync
    this.overflow = full;
  }
}

// Rows read on hot paths (clients at every token request, users at /userinfo and /introspect),
// kept in process for a few seconds and dropped on every replica as soon as a change commits: the
// change NOTIFYs the cache's channel with the row's id (an empty payload drops everything). While
// the notification connection is down memory does not answer for the database, and a read that
// raced an invalidation is not kept. Unknown ids are never cached, so a flood of random ids cannot
// fill it.
//
// When the database itself is unreachable (src/db/health.ts), an entry is answered from memory,
// whatever its age, within DB_OUTAGE_GRACE_SECONDS of the outage's beginning: what the cache holds
// was current when the notifications stopped, or was read since. Past the grace, or for an id it
// does not hold, the cache refuses (DatabaseUnavailable: 503). The first reconnection drops
// everything, since changes may have been missed.
import type { DbHandle } from '../db/create-db.js';
import type { Clock } from '../core/clock.js';
import type { DbHealth } from '../db/health.js';
import { DatabaseUnavailable } from '../db/errors.js';

export interface NotifiedCacheOptions {
  ttlMs?: number;
  maxEntries?: number;
}

export class NotifiedCache<V> {
  private entries = new Map<string, { value: V; at: number }>();
  /** Memory answers only while the notifications are heard. */
  private live = false;
  /** Bumped by every invalidation: a database read that started before one is not cached. */
  private generation = 0;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private health: DbHealth | undefined;
  /** One database read per id at a time: requests that miss together (an entry's expiry under load) share it. */
  private readonly inflight = new Map<string, { generation: number; promise: Promise<V | undefined> }>();

  constructor(
    private readonly channel: string,
    private readonly load: (id: string) => Promise<V | undefined>,
    private readonly clock: Clock,
    opts: NotifiedCacheOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 5000;
    this.maxEntries = opts.maxEntries ?? 50_000;
  }

  /**
   * Subscribe to the invalidations; returns the unsubscribe function. With `health`, the cache
   * answers from memory for an unreachable database within the outage grace.
   */
  async start(dbh: DbHandle, health?: DbHealth): Promise<() => Promise<void>> {
    this.health = health;
    const stop = await dbh.listen(
      this.channel,
      (id) => this.invalidate(id || undefined),
      () => {
        // changes may have been missed while disconnected
        this.invalidate();
        this.live = true;
      },
      () => {
        // kept: what the cache knew when the notifications stopped is the outage's fallback
        this.live = false;
      },
    );
    this.live = true;
    return async () => {
      this.live = false;
      await stop();
    };
  }

  get size(): number {
    return this.entries.size;
  }

  async get(id: string): Promise<V | undefined> {
    const now = this.clock.now();
    const hit = this.entries.get(id);
    if (this.live && hit && now >= hit.at && now - hit.at < this.ttlMs) return hit.value;
    // the database is known to be away: within the grace, do not wait for it
    if (hit && this.health?.servesFromMemory()) return hit.value;
    const generation = this.generation;
    let value: V | undefined;
    try {
      let pending = this.inflight.get(id);
      // a read that started before an invalidation is not joined
      if (!pending || pending.generation !== generation) {
        const entry = { generation, promise: this.load(id) };
        this.inflight.set(id, entry);
        const forget = () => {
          if (this.inflight.get(id) === entry) this.inflight.delete(id);
        };
        entry.promise.then(forget, forget);
        pending = entry;
      }
      value = await pending.promise;
    } catch (err) {
      if (!this.health?.reportFailure(err)) throw err;
      return this.fromMemory(this.entries.get(id));
    }
    // kept even while not live, as the outage fallback: the reconnection drops it with the rest
    if (generation !== this.generation) return value;
    if (value !== undefined) {
      if (this.entries.size >= this.maxEntries && !this.entries.has(id)) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(id, { value, at: now });
    } else {
      this.entries.delete(id);
    }
    return value;
  }

  /** The outage fallback: a held entry within the grace, else 503. */
  private fromMemory(hit: { value: V } | undefined): V {
    if (hit && this.health?.servesFromMemory()) return hit.value;
    throw new DatabaseUnavailable(hit ? 'the database has been unreachable for longer than the outage grace' : 'the database is unreachable and the row is not in memory');
  }

  invalidate(id?: string): void {
    this.generation++;
    if (id) this.entries.delete(id);
    else this.entries.clear();
  }
}

// Rows read on hot paths (clients at every token request, users at /userinfo and /introspect),
// kept in process for a few seconds and dropped on every replica as soon as a change commits: the
// change NOTIFYs the cache's channel with the row's id (an empty payload drops everything). While
// the notification connection is down nothing is answered from memory, and a read that raced an
// invalidation is not kept. Unknown ids are never cached, so a flood of random ids cannot fill it.
import type { DbHandle } from '../db/create-db.js';
import type { Clock } from '../clock.js';

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

  constructor(
    private readonly channel: string,
    private readonly load: (id: string) => Promise<V | undefined>,
    private readonly clock: Clock,
    opts: NotifiedCacheOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 5000;
    this.maxEntries = opts.maxEntries ?? 50_000;
  }

  /** Subscribe to the invalidations; returns the unsubscribe function. */
  async start(dbh: DbHandle): Promise<() => Promise<void>> {
    const stop = await dbh.listen(
      this.channel,
      (id) => this.invalidate(id || undefined),
      () => {
        // changes may have been missed while disconnected
        this.invalidate();
        this.live = true;
      },
      () => {
        this.live = false;
        this.invalidate();
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
    if (this.live) {
      const hit = this.entries.get(id);
      if (hit && now >= hit.at && now - hit.at < this.ttlMs) return hit.value;
    }
    const generation = this.generation;
    const value = await this.load(id);
    if (!this.live || generation !== this.generation) return value;
    if (value !== undefined) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(id, { value, at: now });
    } else {
      this.entries.delete(id);
    }
    return value;
  }

  invalidate(id?: string): void {
    this.generation++;
    if (id) this.entries.delete(id);
    else this.entries.clear();
  }
}

// /userinfo and /introspect read the token's user on every call: keep users in process for a few
// seconds. A trigger on the users table (migration 000600) NOTIFYs latchkey_users with the id at
// the commit of every UPDATE or DELETE, whatever made it (the server, the CLI, plain SQL), and every
// replica drops its copy at once. While the notification connection is down nothing is answered
// from memory, and a read that raced an invalidation is not kept.
import type { Kysely } from 'kysely';
import type { Database, User } from '../db/types.js';
import type { DbHandle } from '../db/create-db.js';
import type { Clock } from '../clock.js';
import { findUserById } from './users.js';

export const USERS_CHANNEL = 'latchkey_users';

export interface UserCacheOptions {
  ttlMs?: number;
  maxEntries?: number;
}

export class UserCache {
  private entries = new Map<string, { user: User; at: number }>();
  /** Memory answers only while the notifications are heard. */
  private live = false;
  /** Bumped by every invalidation: a database read that started before one is not cached. */
  private generation = 0;
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
    opts: UserCacheOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 5000;
    this.maxEntries = opts.maxEntries ?? 50_000;
  }

  /** Subscribe to the invalidations; returns the unsubscribe function. */
  async start(dbh: DbHandle): Promise<() => Promise<void>> {
    const stop = await dbh.listen(
      USERS_CHANNEL,
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

  async get(id: string): Promise<User | undefined> {
    const now = this.clock.now();
    if (this.live) {
      const hit = this.entries.get(id);
      if (hit && now >= hit.at && now - hit.at < this.ttlMs) return hit.user;
    }
    const generation = this.generation;
    const user = await findUserById(this.db, id);
    if (!this.live || generation !== this.generation) return user;
    if (user) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(id, { user, at: now });
    } else {
      // unknown ids are not cached, so a flood of random ids cannot fill the map
      this.entries.delete(id);
    }
    return user;
  }

  invalidate(id?: string): void {
    this.generation++;
    if (id) this.entries.delete(id);
    else this.entries.clear();
  }
}

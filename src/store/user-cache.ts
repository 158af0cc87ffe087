// Users for /userinfo and /introspect. A trigger on the users table (migration 000600) NOTIFYs
// latchkey_users with the id at the commit of every UPDATE or DELETE, whatever made it (the
// server, the CLI, plain SQL).
import type { Kysely } from 'kysely';
import type { Database, User } from '../db/types.js';
import type { Clock } from '../core/clock.js';
import { NotifiedCache } from './notified-cache.js';
import { findUserById } from './users.js';

import { USERS_CHANNEL } from '../core/channels.js';
export { USERS_CHANNEL };

export class UserCache extends NotifiedCache<User> {
  constructor(db: Kysely<Database>, clock: Clock) {
    super(USERS_CHANNEL, (id) => findUserById(db, id), clock, { maxEntries: 50_000 });
  }
}

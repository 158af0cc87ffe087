// Login sessions for /authorize and the interaction pages: an SSO visit reads no table. A trigger
// on login_sessions (migration 000900) NOTIFYs latchkey_sessions with the id digest at the commit
// of every UPDATE or DELETE — logout, idle sliding, pruning, plain SQL — and every replica drops
// its copy. Whether the user is still active comes from the user cache, which follows the users
// table the same way. A code issued from a session is checked against the database again when it
// is redeemed (src/grants/authorization-code.ts), so a session ended a moment ago on another
// replica can never yield tokens.
import type { DbHandle } from '../db/create-db.js';
import type { Clock } from '../core/clock.js';
import { NotifiedCache } from './notified-cache.js';
import { loadSession, type SessionRow } from './login-sessions.js';

import { SESSIONS_CHANNEL } from '../core/channels.js';
export { SESSIONS_CHANNEL };

export class SessionCache extends NotifiedCache<SessionRow> {
  constructor(dbh: Pick<DbHandle, 'db' | 'prepared'>, clock: Clock) {
    super(SESSIONS_CHANNEL, (idDigest) => loadSession(dbh, idDigest), clock, { maxEntries: 100_000 });
  }
}

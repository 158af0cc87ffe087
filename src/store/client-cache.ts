// Clients are read on every token request. The client commands NOTIFY latchkey_clients with the
// client id when they change one (src/cli/commands.ts).
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import type { Clock } from '../core/clock.js';
import { NotifiedCache } from './notified-cache.js';
import { findClient, type Client } from './clients.js';

import { CLIENTS_CHANNEL } from '../core/channels.js';
export { CLIENTS_CHANNEL };

export class ClientCache extends NotifiedCache<Client> {
  constructor(db: Kysely<Database>, clock: Clock) {
    super(CLIENTS_CHANNEL, (id) => findClient(db, id), clock, { maxEntries: 10_000 });
  }
}

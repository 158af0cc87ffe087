// Clients are read on every token request: keep them in process for a few seconds, and drop an
// entry at once when any replica announces a change (NOTIFY latchkey_clients).
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import type { Clock } from '../clock.js';
import { findClient, type Client } from './clients.js';

export const CLIENTS_CHANNEL = 'latchkey_clients';
const TTL_MS = 5000;
const MAX_ENTRIES = 10000;

export class ClientCache {
  private entries = new Map<string, { client: Client | undefined; at: number }>();
  /** Bumped by every invalidation: a database read that started before one is not cached. */
  private generation = 0;
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  async get(clientId: string): Promise<Client | undefined> {
    const now = this.clock.now();
    const hit = this.entries.get(clientId);
    if (hit && now - hit.at < TTL_MS && now >= hit.at) return hit.client;
    const generation = this.generation;
    const client = await findClient(this.db, clientId);
    if (generation !== this.generation) return client;
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    // unknown ids are not cached, so a flood of random ids cannot fill the map
    if (client) this.entries.set(clientId, { client, at: now });
    else this.entries.delete(clientId);
    return client;
  }

  invalidate(clientId?: string): void {
    this.generation++;
    if (clientId) this.entries.delete(clientId);
    else this.entries.clear();
  }
}

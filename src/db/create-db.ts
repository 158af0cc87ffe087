// createDb: Kysely over PGlite (embedded, or `memory:`) or over a `pg` pool (postgres://).
// One code path above this file; only here do the two backends differ.
import path from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './types.js';

export type DbKind = 'pglite' | 'postgres';

export interface DbHandle {
  db: Kysely<Database>;
  kind: DbKind;
  /**
   * Subscribe to NOTIFY on `channel`. `onReconnect` runs after the notification connection was
   * lost and re-established (notifications may have been missed meanwhile).
   */
  listen(channel: string, onMessage: (payload: string) => void, onReconnect?: () => void, onDisconnect?: () => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
}

export interface CreateDbOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  poolSize?: number;
  onError?: (err: Error) => void;
}

export async function createDb(opts: CreateDbOptions): Promise<DbHandle> {
  if (opts.databaseUrl && /^postgres(ql)?:\/\//.test(opts.databaseUrl)) return createPostgres(opts.databaseUrl, opts);
  return createPglite(opts.databaseUrl === 'memory:' ? undefined : path.join(opts.dataDir, 'pgdata'));
}

// `memory:` databases (tests) start from a snapshot of a freshly initialised one: initdb is most of
// PGlite's start-up cost, and a process that opens many throwaway databases pays it once.
let memoryTemplate: Promise<Blob | undefined> | undefined;

async function createPglite(dir: string | undefined): Promise<DbHandle> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGliteDialect } = await import('kysely-pglite-dialect');
  let pglite: InstanceType<typeof PGlite>;
  if (dir) {
    pglite = new PGlite(dir);
    await pglite.waitReady;
  } else {
    const template = memoryTemplate ? await memoryTemplate : undefined;
    pglite = template ? new PGlite({ loadDataDir: template }) : new PGlite();
    await pglite.waitReady;
    if (!memoryTemplate) memoryTemplate = pglite.dumpDataDir('none').then((b) => b as Blob, () => undefined);
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    kind: 'pglite',
    async listen(channel, onMessage) {
      const unsub = await pglite.listen(channel, onMessage);
      return async () => unsub();
    },
    async notify(channel, payload) {
      await pglite.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    async close() {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

function createPostgres(url: string, opts: CreateDbOptions): DbHandle {
  const base: pg.PoolConfig = {
    connectionString: url,
    connectionTimeoutMillis: 5000,
    // a stuck connection must not hang a request forever
    query_timeout: 15000,
    keepAlive: true,
  };
  const pool = new pg.Pool({ ...base, max: opts.poolSize ?? 10, idleTimeoutMillis: 30000 });
  // an idle client losing its connection must never crash the process
  pool.on('error', (err) => opts.onError?.(err));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const listeners: Array<() => Promise<void>> = [];
  let closed = false;

  return {
    db,
    kind: 'postgres',
    async listen(channel, onMessage, onReconnect, onDisconnect) {
      let client: pg.Client | undefined;
      let stopped = false;
      let retry: NodeJS.Timeout | undefined;
      const connect = async (isReconnect: boolean): Promise<void> => {
        const c = new pg.Client(base);
        c.on('error', (err) => {
          opts.onError?.(err);
          if (!stopped && !closed) onDisconnect?.();
        });
        c.on('end', () => {
          if (stopped || closed) return;
          client = undefined;
          onDisconnect?.();
          schedule();
        });
        c.on('notification', (msg) => {
          if (msg.channel === channel) onMessage(msg.payload ?? '');
        });
        await c.connect();
        await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
        if (stopped || closed) {
          await c.end().catch(() => {});
          return;
        }
        client = c;
        if (isReconnect) onReconnect?.();
      };
      const schedule = (): void => {
        if (retry || stopped || closed) return;
        retry = setTimeout(() => {
          retry = undefined;
          connect(true).catch((err) => {
            opts.onError?.(err as Error);
            schedule();
          });
        }, 500);
        retry.unref();
      };
      await connect(false);
      const stop = async (): Promise<void> => {
        stopped = true;
        if (retry) clearTimeout(retry);
        await client?.end().catch(() => {});
      };
      listeners.push(stop);
      return stop;
    },
    async notify(channel, payload) {
      await pool.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    async close() {
      closed = true;
      await Promise.all(listeners.map((stop) => stop()));
      await db.destroy();
    },
  };
}

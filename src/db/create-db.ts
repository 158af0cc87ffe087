// createDb: Kysely over PGlite (embedded, or `memory:`) or over a `pg` pool (postgres://).
// One code path above this file; only here do the two backends differ.
import path from 'node:path';
import { Kysely, PostgresDialect, type CompiledQuery } from 'kysely';
import pg from 'pg';
import type { Database } from './types.js';
import { isDatabaseUnavailable } from './errors.js';

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
  /**
   * Follow the notification connection: `up` is false when it is lost and true when it is back
   * (src/db/health.ts). PGlite has none to lose. Returns the unsubscribe function.
   */
  watchNotifications(onChange: (up: boolean) => void): () => void;
  /**
   * Run one of the hot statements (token grants, /authorize) as a named prepared statement: on
   * Postgres each pooled connection parses and plans it once instead of on every request (planning
   * the rotation statement cost about 0.3 ms of the database's CPU per refresh). `name` must
   * always come with the same SQL text. PGlite runs it as an ordinary query.
   */
  prepared<R>(name: string, query: CompiledQuery): Promise<R[]>;
  /** For metrics: is the notification connection up, and the pool's connections (Postgres only). */
  stats?(): DbStats;
  close(): Promise<void>;
}

export interface DbStats {
  listening: boolean;
  pool?: { total: number; idle: number; waiting: number };
}

export interface CreateDbOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  poolSize?: number;
  /** Named prepared statements for the hot statements (default true). */
  preparedStatements?: boolean;
  /** Connection errors other than the database being away (those are the outage state's to log once: src/db/health.ts). */
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
    watchNotifications() {
      return () => {};
    },
    async prepared<R>(_name: string, query: CompiledQuery) {
      return (await db.executeQuery(query)).rows as R[];
    },
    // notifications come from the same in-process instance: never disconnected
    stats: () => ({ listening: !pglite.closed }),
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
  // an outage reports itself once, through the outage state, rather than once per connection and retry
  const report = (err: Error): void => {
    if (!isDatabaseUnavailable(err)) opts.onError?.(err);
  };
  // an idle client losing its connection must never crash the process
  pool.on('error', report);
  // nor a checked-out one, which emits 'error' too when its connection breaks (between the
  // statements of a transaction, or as one is written): the statement in flight fails with it
  // and the pool drops the client when it is released, so there is nothing more to do here
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const statementIds = new Map<string, string>();
  let closed = false;

  // One connection carries every LISTEN of this process (keys, clients, users, denylist), so a
  // replica holds one connection for notifications however many channels it follows.
  interface Subscriber {
    channel: string;
    onMessage: (payload: string) => void;
    onReconnect?: () => void;
    onDisconnect?: () => void;
  }
  const subscribers = new Set<Subscriber>();
  const watchers = new Set<(up: boolean) => void>();
  const listening = new Set<string>();
  let listenClient: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let everConnected = false;

  const lost = (): void => {
    if (closed) return;
    listenClient = undefined;
    listening.clear();
    for (const w of watchers) w(false);
    for (const s of subscribers) s.onDisconnect?.();
    schedule();
  };
  const connect = (): Promise<pg.Client> => {
    connecting ??= (async () => {
      const c = new pg.Client(base);
      c.on('error', (err) => {
        report(err);
        if (listenClient === c) lost();
      });
      c.on('end', () => {
        if (listenClient === c) lost();
      });
      c.on('notification', (msg) => {
        for (const s of subscribers) if (s.channel === msg.channel) s.onMessage(msg.payload ?? '');
      });
      try {
        await c.connect();
        const channels = [...new Set([...subscribers].map((s) => s.channel))];
        for (const ch of channels) await c.query(`LISTEN ${pg.escapeIdentifier(ch)}`);
        if (closed) {
          await c.end().catch(() => {});
          throw new Error('database closed');
        }
        listenClient = c;
        for (const ch of channels) listening.add(ch);
        if (everConnected) {
          for (const w of watchers) w(true);
          for (const s of subscribers) s.onReconnect?.();
        }
        everConnected = true;
        return c;
      } catch (err) {
        await c.end().catch(() => {});
        throw err;
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  };
  const schedule = (): void => {
    if (retry || closed) return;
    retry = setTimeout(() => {
      retry = undefined;
      connect().catch((err) => {
        report(err as Error);
        schedule();
      });
    }, 500);
    retry.unref();
  };
  const ensureListening = async (channel: string): Promise<void> => {
    if (listening.has(channel)) return;
    const c = listenClient ?? (await connect());
    if (!listening.has(channel)) {
      await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      listening.add(channel);
    }
  };

  return {
    db,
    kind: 'postgres',
    async listen(channel, onMessage, onReconnect, onDisconnect) {
      const sub: Subscriber = { channel, onMessage, onReconnect, onDisconnect };
      subscribers.add(sub);
      try {
        await ensureListening(channel);
      } catch (err) {
        subscribers.delete(sub);
        throw err;
      }
      return async () => {
        subscribers.delete(sub);
        if (![...subscribers].some((s) => s.channel === channel) && listenClient && !closed) {
          listening.delete(channel);
          await listenClient.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
        }
      };
    },
    async notify(channel, payload) {
      await pool.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    watchNotifications(onChange) {
      watchers.add(onChange);
      return () => watchers.delete(onChange);
    },
    async prepared<R>(name: string, query: CompiledQuery) {
      if (opts.preparedStatements === false) return (await db.executeQuery(query)).rows as R[];
      // one statement name per distinct text, so that a caller whose SQL varies can never reuse a
      // name for another text (pg refuses that)
      let id = statementIds.get(query.sql);
      if (id === undefined) {
        if (statementIds.size >= 1000) return (await db.executeQuery(query)).rows as R[];
        id = `${name}_${statementIds.size}`;
        statementIds.set(query.sql, id);
      }
      const r = await pool.query({ name: id, text: query.sql, values: query.parameters as unknown[] });
      return r.rows as R[];
    },
    stats: () => ({ listening: listenClient !== undefined, pool: { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount } }),
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      subscribers.clear();
      watchers.clear();
      const c = listenClient ?? (await connecting?.catch(() => undefined));
      listenClient = undefined;
      await c?.end().catch(() => {});
      await db.destroy();
    },
  };
}

// The runtime: everything the server (and the CLI, when it opens the data itself) needs,
// opened in order — database, migrations, KEK, keys, shared secrets.
import type { Kysely } from 'kysely';
import { systemClock, type Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { createDb, type DbHandle } from '../db/create-db.js';
import { migrate } from '../db/migrator.js';
import type { Database } from '../db/types.js';
import { createPasswordHasher, type PasswordHasher } from '../accounts/passwords.js';
import { loadKek, type Kek } from '../keys/kek.js';
import { bootstrapKeys, Keystore, keystoreOptions } from '../keys/keystore.js';
import { getOrCreateSecret } from '../keys/secrets.js';
import type { LocalCopies, OpsContext } from './context.js';

export interface Runtime {
  config: Config;
  dbh: DbHandle;
  db: Kysely<Database>;
  clock: Clock;
  passwords: PasswordHasher;
  kek: Kek;
  keystore: Keystore;
  cookieSecret: Buffer;
  csrfSecret: Buffer;
  /** The key authorization codes are sealed under (src/tokens/codes.ts). */
  codeSecret: Buffer;
  /** The key refresh tokens are sealed under (src/tokens/refresh-tokens.ts). */
  refreshSecret: Buffer;
  /** The key DPoP server nonces are made with (src/protocol/dpop.ts). */
  dpopNonceSecret: Buffer;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  clock?: Clock;
  passwords?: PasswordHasher;
  onDbError?: (err: Error) => void;
}

export function isEmbedded(config: Config): boolean {
  return !config.databaseUrl || !/^postgres(ql)?:\/\//.test(config.databaseUrl);
}

export async function openRuntime(config: Config, opts: RuntimeOptions = {}): Promise<Runtime> {
  const clock = opts.clock ?? systemClock;
  // the KEK first: a missing one must stop the start before anything is written
  const kek = loadKek({ kek: config.kek, kekFile: config.kekFile, embedded: isEmbedded(config) });
  const dbh = await createDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.pgPoolSize, preparedStatements: config.pgPreparedStatements, onError: opts.onDbError });
  try {
    await migrate(dbh.db);
    await bootstrapKeys(dbh.db, kek, config.enabledAlgs, clock);
    const keystore = new Keystore(dbh.db, kek, keystoreOptions(config, clock));
    await keystore.reload();
    const cookieSecret = await getOrCreateSecret(dbh.db, kek, 'cookie', clock);
    const csrfSecret = await getOrCreateSecret(dbh.db, kek, 'csrf', clock);
    const codeSecret = await getOrCreateSecret(dbh.db, kek, 'authorization-code', clock);
    const refreshSecret = await getOrCreateSecret(dbh.db, kek, 'refresh-token', clock);
    const dpopNonceSecret = await getOrCreateSecret(dbh.db, kek, 'dpop-nonce', clock);
    return {
      config,
      dbh,
      db: dbh.db,
      clock,
      passwords: opts.passwords ?? createPasswordHasher(config.passwordHashConcurrency, config.passwordHashQueue),
      kek,
      keystore,
      cookieSecret,
      csrfSecret,
      codeSecret,
      refreshSecret,
      dpopNonceSecret,
      close: () => dbh.close(),
    };
  } catch (err) {
    await dbh.close().catch(() => {});
    throw err;
  }
}

/**
 * The context of admin operations run inside this runtime: by the admin API (with this replica's
 * copies, `local`) and by CLI commands forwarded over the local socket (`insideServer`).
 */
export function opsContextFor(rt: Runtime, local?: LocalCopies): OpsContext & { insideServer: true } {
  return {
    config: rt.config,
    db: rt.db,
    clock: rt.clock,
    passwords: rt.passwords,
    notify: (channel, payload) => rt.dbh.notify(channel, payload),
    getKek: () => rt.kek,
    local: local ?? { userChanged() {}, clientChanged() {}, syncDenylist: async () => {}, reloadKeys: () => rt.keystore.reload() },
    insideServer: true,
  };
}

/** The CLI context for commands run inside this runtime (tests, and the socket without an app). */
export const cliContextFor = (rt: Runtime, local?: LocalCopies) => opsContextFor(rt, local);

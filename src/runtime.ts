// The runtime: everything the server (and the CLI, when it opens the data itself) needs,
// opened in order — database, migrations, KEK, keys, shared secrets.
import type { Kysely } from 'kysely';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { createDb, type DbHandle } from './db/create-db.js';
import { migrate } from './db/migrator.js';
import type { Database } from './db/types.js';
import { createPasswordHasher, type PasswordHasher } from './accounts/passwords.js';
import { loadKek, type Kek } from './keys/kek.js';
import { bootstrapKeys, Keystore, keystoreOptions } from './keys/keystore.js';
import { getOrCreateSecret } from './keys/secrets.js';
import type { CliContext } from './cli/commands.js';

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
      dpopNonceSecret,
      close: () => dbh.close(),
    };
  } catch (err) {
    await dbh.close().catch(() => {});
    throw err;
  }
}

/** The CLI context for commands run inside this runtime (over the local socket). */
export function cliContextFor(rt: Runtime): CliContext {
  return {
    config: rt.config,
    db: rt.db,
    clock: rt.clock,
    passwords: rt.passwords,
    notify: (channel, payload) => rt.dbh.notify(channel, payload),
    getKek: () => rt.kek,
    runtime: rt,
  };
}

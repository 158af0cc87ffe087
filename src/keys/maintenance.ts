// Background key maintenance in every replica: the scheduled lifecycle step (rotation, a missing
// next key, deletion of expired retired keys) and following changes made elsewhere.
//
// A replica reloads its keystore (1) on NOTIFY latchkey_keys, sent at commit by every change;
// (2) when the LISTEN connection comes back after a loss (notifications may have been missed);
// (3) every KEY_POLL_SECONDS (default 30 s) regardless, together with the maintenance step. So a
// replica follows a change at once, or within KEY_POLL_SECONDS if a notification was lost.
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { DbHandle } from '../db/create-db.js';
import type { Database } from '../db/types.js';
import type { Kek } from './kek.js';
import type { Keystore } from './keystore.js';
import { KEYS_CHANNEL } from './keystore.js';
import { runKeyMaintenance, type MaintenanceAction } from './rotation.js';
import { isDatabaseUnavailable } from '../db/errors.js';

export { KEYS_CHANNEL };

interface MaintenanceRuntime {
  db: Kysely<Database>;
  kek: Kek;
  clock: Clock;
  config: Config;
  keystore: Keystore;
}

/** One maintenance step and a reload: what every replica does every KEY_POLL_SECONDS. */
export async function keyMaintenanceStep(rt: MaintenanceRuntime): Promise<MaintenanceAction[]> {
  try {
    return await runKeyMaintenance({ db: rt.db, kek: rt.kek, clock: rt.clock, config: rt.config });
  } finally {
    await rt.keystore.reload();
  }
}

export async function startKeyMaintenance(rt: MaintenanceRuntime & { dbh: DbHandle }, log: FastifyBaseLogger): Promise<() => Promise<void>> {
  const reload = (why: string): void => {
    rt.keystore.reload().catch((err: Error) => {
      // an outage has its one warning (src/db/health.ts)
      if (!isDatabaseUnavailable(err)) log.error({ err: err.message, why }, 'keystore reload failed');
    });
  };
  const unlisten = await rt.dbh.listen(
    KEYS_CHANNEL,
    () => reload('notify'),
    () => {
      log.info('key notifications: connection re-established, reloading keys');
      reload('reconnect');
    },
  );

  let inflight: Promise<void> | undefined;
  let stopped = false;
  const tick = (): Promise<void> => {
    if (inflight || stopped) return inflight ?? Promise.resolve();
    inflight = keyMaintenanceStep(rt)
      .then((actions) => {
        for (const a of actions) log.info({ ...a }, `signing key ${a.action}`);
      })
      .catch((err: Error) => {
        if (!isDatabaseUnavailable(err)) log.error({ err: err.message.split('\n')[0] }, 'key maintenance failed');
      })
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  };
  // at once: on a database from before the lifecycle, this publishes the missing next keys
  await tick();
  const timer = setInterval(() => void tick(), rt.config.keyPollSeconds * 1000);
  timer.unref();

  return async () => {
    stopped = true;
    clearInterval(timer);
    await inflight;
    await unlisten();
  };
}

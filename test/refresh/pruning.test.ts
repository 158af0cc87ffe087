// Expired rows go in bounded batches; live rows stay.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { pruneExpired } from '../../src/store/pruning.js';
import { denylist } from '../../src/store/refresh-families.js';
import { DENYLIST_RETENTION_SECONDS } from '../../src/core/channels.js';

t.teardown(dropCreatedDatabases);

for (const backend of backends()) {
  t.test(`pruning on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create());
    t.teardown(() => e.close());
    const now = new Date(e.clock.now());
    const nowSec = Math.floor(now.getTime() / 1000);
    const expired = Array.from({ length: 2500 }, (_, i) => ({ jti: `old-${i}`, exp: nowSec + 10 }));
    const live = Array.from({ length: 5 }, (_, i) => ({ jti: `live-${i}`, exp: nowSec + 3600 }));
    await denylist(e.rt.db, [...expired, ...live], now);
    t.equal(Number((await e.rt.db.selectFrom('denylist').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n), 2505);

    // past exp and past the leeway during which the tokens would still be accepted
    const later = new Date(now.getTime() + (10 + DENYLIST_RETENTION_SECONDS + 50) * 1000);
    const r = await pruneExpired(e.rt.db, later, 1000, 2);
    t.equal(r?.denylist, 2000, 'at most maxBatches × batch rows per pass');
    const r2 = await pruneExpired(e.rt.db, later, 1000, 2);
    t.equal(r2?.denylist, 500, 'the rest on the next pass');
    const left = await e.rt.db.selectFrom('denylist').select('jti').execute();
    t.same(left.map((x) => x.jti).sort(), live.map((x) => x.jti).sort(), 'live entries stay');
  });
}

// The in-process denylist view: it hears of revocations through NOTIFY, forgets expired entries,
// stays bounded (answering from the database past its limit, and from memory again only once it
// has read everything), and a full reload racing an incremental read loses nothing.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { waitFor } from '../helpers/process.js';
import { DenylistView } from '../../src/tokens/denylist-view.js';
import { denylist } from '../../src/store/refresh-families.js';
import { DENYLIST_RETENTION_SECONDS } from '../../src/core/channels.js';

t.teardown(dropCreatedDatabases);

for (const backend of backends()) {
  t.test(`denylist view on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create());
    t.teardown(() => e.close());
    const db = e.rt.db;
    const expIn = (seconds: number) => new Date(e.clock.now() + seconds * 1000);
    const insert = (prefix: string, n: number, seconds: number) =>
      db.insertInto('denylist').values(Array.from({ length: n }, (_, i) => ({ jti: `${prefix}${i}`, expires_at: expIn(seconds) }))).execute();
    const clear = () => db.deleteFrom('denylist').execute();

    await t.test('NOTIFY brings a revocation made elsewhere into the view', async (t) => {
      await clear();
      // a poll that never fires: only the notification can update the view
      const view = new DenylistView(db, e.clock, { pollMs: 3600_000 });
      await view.start(e.rt.dbh);
      t.teardown(() => view.stop());
      await db.insertInto('denylist').values({ jti: 'quiet', expires_at: expIn(600) }).execute();
      t.equal(await view.isDenied('quiet'), false, 'a current view answers from memory (it was not told)');
      // what a revocation on another replica does: insert + pg_notify, in its own transaction
      await db.transaction().execute((trx) => denylist(trx, [{ jti: 'loud', exp: Math.floor(e.clock.now() / 1000) + 600 }], new Date(e.clock.now())));
      await t.resolves(waitFor(async () => ((await view.isDenied('loud')) ? true : undefined), 30_000), 'the notified revocation arrives');
      t.equal(await view.isDenied('quiet'), true, 'the incremental read picked up the earlier row too');
      t.equal(await view.isDenied('never'), false);
    });

    await t.test('a full reload racing an incremental read loses nothing', async (t) => {
      await clear();
      const view = new DenylistView(db, e.clock, { pollMs: 3600_000 });
      await insert('old', 1500, 600);
      await view.resync();
      t.equal(view.size, 1500);
      await insert('new', 1, 600);
      // an incremental read is in flight when a
      // lost notification connection asks for a full reload
      const incremental = view.sync();
      const reload = view.resync();
      await Promise.all([incremental, reload]);
      t.equal(view.size, 1501, 'every entry is back');
      t.equal(await view.isDenied('old0'), true, 'an entry from before the overlap window');
      t.equal(await view.isDenied('new0'), true);
    });

    await t.test('bounded: past maxEntries it asks the database, and trusts memory again only when complete', async (t) => {
      await clear();
      const view = new DenylistView(db, e.clock, { pollMs: 3600_000, maxEntries: 4 });
      await insert('short', 4, 10);
      await insert('long', 2, 3600);
      await view.resync();
      t.ok(view.size <= 4, `bounded (${view.size})`);
      for (const jti of ['short0', 'short3', 'long0', 'long1']) t.equal(await view.isDenied(jti), true, `${jti}: denied (from the database when not in memory)`);
      t.equal(await view.isDenied('other'), false);

      // the short-lived entries expire: the next read has room for everything
      const later = 10 + DENYLIST_RETENTION_SECONDS + 10;
      e.clock.advance(later);
      await view.sync();
      t.equal(view.size, 2, 'expired entries are forgotten');
      t.equal(await view.isDenied('long0'), true);
      t.equal(await view.isDenied('long1'), true, 'an entry skipped while full is known once memory is trusted again');

      await insert('more', 10, 3600);
      await view.sync();
      t.ok(view.size <= 4, `still bounded (${view.size})`);
      for (let i = 0; i < 10; i++) t.equal(await view.isDenied(`more${i}`), true, `more${i}: denied`);
      e.clock.advance(-later);
    });

    await t.test('entries leave when their tokens expire', async (t) => {
      await clear();
      const view = new DenylistView(db, e.clock, { pollMs: 3600_000 });
      await insert('a', 3, 60);
      await insert('b', 2, 3600);
      await view.resync();
      t.equal(view.size, 5);
      // kept while a token could still pass inside the clock leeway, then forgotten
      e.clock.advance(60 + DENYLIST_RETENTION_SECONDS - 1);
      await view.sync();
      t.equal(view.size, 5, 'kept through the leeway');
      e.clock.advance(2);
      await view.sync();
      t.equal(view.size, 2, 'only the unexpired remain');
      e.clock.advance(-(60 + DENYLIST_RETENTION_SECONDS + 1));
    });
  });
}

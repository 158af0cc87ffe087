// Two replicas started at the same moment on one fresh Postgres database: migrations run under the
// advisory lock and key bootstrap is serialized, so both become ready and publish one set of keys.
import t from 'tap';
import pg from 'pg';
import { dropCreatedDatabases, postgres, postgresOnly } from '../helpers/backends.js';
import { startServer } from '../helpers/process.js';
import { freePort, tempDir, TEST_KEK } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

// a race shows only sometimes: start the pair a few times, each on a fresh database
for (const round of [1, 2, 3]) {
  t.test(`two servers starting at once on one database share one set of keys (round ${round})`, { skip: postgresOnly }, async (t) => {
    const url = await postgres.create();
    const env = async () => ({ PORT: String(await freePort()), DATABASE_URL: url, LATCHKEY_KEK: TEST_KEK, CWD: tempDir() });
    const [envA, envB] = [await env(), await env()];
    const started = await Promise.allSettled([startServer(envA), startServer(envB)]);
    for (const s of started) if (s.status === 'fulfilled') t.teardown(() => s.value.stop('SIGKILL'));
    const servers = started.map((s, i) => {
      if (s.status === 'rejected') throw new Error(`replica ${i} did not become ready: ${(s.reason as Error).message}`);
      return s.value;
    });
    t.pass('both replicas are ready');

    const jwks = await Promise.all(
      servers.map(async (s) => {
        const r = await fetch(`${s.url}/.well-known/jwks.json`);
        t.equal(r.status, 200);
        return (await r.json()) as { keys: Array<{ kid: string; alg: string }> };
      }),
    );
    t.same(jwks[0], jwks[1], 'both replicas publish the same JWKS');
    // one set: per algorithm one active key and one published next key, whoever created them
    t.same(jwks[0].keys.map((k) => k.alg).sort(), ['ES256', 'ES256', 'RS256', 'RS256'], 'one ES256 and one RS256 key, each with its next key');

    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      const keys = await db.query<{ kid: string; alg: string; state: string }>("SELECT kid, alg, state FROM signing_keys WHERE state <> 'revoked' ORDER BY alg, state");
      t.same(
        keys.rows.map((r) => [r.alg, r.state]),
        [
          ['ES256', 'active'],
          ['ES256', 'next'],
          ['RS256', 'active'],
          ['RS256', 'next'],
        ],
        'exactly one active and one next key per algorithm in the database',
      );
      t.same(keys.rows.map((r) => r.kid).sort(), jwks[0].keys.map((k) => k.kid).sort(), 'the JWKS publishes exactly those keys');
      const migrations = await db.query<{ name: string; n: string }>('SELECT name, count(*) AS n FROM latchkey_migrations GROUP BY name');
      t.ok(migrations.rows.length > 0, 'migrations were recorded');
      t.ok(migrations.rows.every((r) => r.n === '1'), 'each migration applied once');
      const secrets = await db.query<{ kek_id: string }>('SELECT DISTINCT kek_id FROM server_secrets');
      t.equal(secrets.rows.length, 1, 'the shared secrets are sealed under the one KEK');
    } finally {
      await db.end();
    }

    for (const s of servers) t.equal(await s.stop('SIGTERM'), 0, 'replica shuts down cleanly');
  });
}

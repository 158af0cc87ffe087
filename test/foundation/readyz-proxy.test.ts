// /readyz follows the database: through a TCP proxy that the test can cut, the built server
// answers 200, then 503 while Postgres is unreachable, then 200 again once it is back.
import t from 'tap';
import { dropCreatedDatabases, postgres, postgresOnly } from '../helpers/backends.js';
import { startServer, waitFor } from '../helpers/process.js';
import { freePort, tempDir, TEST_KEK } from '../helpers/runtime.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

t.teardown(dropCreatedDatabases);

t.test('/readyz goes 503 when Postgres is cut and 200 when it returns', { skip: postgresOnly }, async (t) => {
  const direct = new URL(await postgres.create());
  const proxy = await startTcpProxy(Number(direct.port || 5432), direct.hostname);
  t.teardown(() => proxy.close());
  const viaProxy = new URL(direct.href);
  viaProxy.port = String(proxy.port);

  const port = await freePort();
  const server = await startServer({
    PORT: String(port),
    DATABASE_URL: viaProxy.href,
    LATCHKEY_KEK: TEST_KEK,
    CWD: tempDir(),
  });
  t.teardown(() => server.stop('SIGKILL'));

  const ready = async (): Promise<{ status: number; body: { status: string; checks: Record<string, string>; outage?: Record<string, unknown> } }> => {
    const r = await fetch(`${server.url}/readyz`);
    return { status: r.status, body: (await r.json()) as { status: string; checks: Record<string, string>; outage?: Record<string, unknown> } };
  };

  const before = await ready();
  t.equal(before.status, 200, 'ready through the proxy');
  t.same(before.body.checks, { database: 'ok', migrations: 'ok', signing_key: 'ok' });
  t.ok(proxy.connections > 0, 'the server talks to Postgres through the proxy');

  proxy.cut();
  const down = await waitFor(async () => {
    const r = await ready();
    return r.status === 503 ? r : undefined;
  }, 60000, 250);
  // within the outage grace (DB_OUTAGE_GRACE_SECONDS) memory still answers for the stateless paths
  t.match(down.body.status, /^(degraded|unavailable)$/);
  t.equal(down.body.checks.database, 'failing', 'the failing check is named');
  t.match(down.body, { outage: { since: String, cached_state_age_seconds: Number, grace_seconds: 30, database_reachable: false } }, 'the outage and the age of the cached state are shown');
  const health = await fetch(`${server.url}/healthz`);
  t.equal(health.status, 200, '/healthz stays 200: the process is alive');

  proxy.resume();
  const up = await waitFor(async () => {
    const r = await ready();
    return r.status === 200 ? r : undefined;
  }, 60000, 250);
  t.same(up.body.checks, { database: 'ok', migrations: 'ok', signing_key: 'ok' }, 'ready again once Postgres is back');
  const ready2 = await waitFor(async () => {
    const r = await ready();
    return r.body.status === 'ready' ? r : undefined;
  }, 60000, 250);
  t.equal(ready2.body.outage, undefined, 'the outage is over once the notifications are back too');

  t.equal(server.proc.exitCode, null, 'the server survived losing its database');
  t.equal(await server.stop('SIGTERM'), 0, 'and still shuts down cleanly');
});

// Back-Channel Logout across replicas: three Latchkey processes (the built server) on one
// Postgres deliver from one outbox. The RP holds every request open until each replica holds its
// full share of notices in flight; one replica is then killed (SIGKILL) and the RP recovers:
// every notice is still delivered (at least once), none is lost, each token valid per §2.6.
import t from 'tap';
import { postgres, postgresOnly, dropCreatedDatabases } from '../helpers/backends.js';
import { freePort, TEST_KEK } from '../helpers/runtime.js';
import { runCli, startServer, waitFor, type ServerProcess } from '../helpers/process.js';
import { loginAndRedeem } from '../helpers/flow.js';
import { Browser } from '../helpers/http-login.js';
import { LogoutRp } from '../helpers/logout-rp.js';
import pg from 'pg';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const PER_REPLICA = 2;

t.test('three replicas, one killed while holding undelivered notices', { skip: postgresOnly }, async (t) => {
  const databaseUrl = await postgres.create();
  const ports = [await freePort(), await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${ports[0]}`;
  // two deliveries in flight per replica: with the RP holding them, each replica holds exactly two
  const base = { DATABASE_URL: databaseUrl, LATCHKEY_KEK: TEST_KEK, ISSUER: issuer, LOG_LEVEL: 'warn', BACKCHANNEL_CONCURRENCY: String(PER_REPLICA), BACKCHANNEL_POLL_SECONDS: '1' };
  const servers: ServerProcess[] = await Promise.all(ports.map((p) => startServer({ ...base, PORT: String(p) })));
  t.teardown(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGTERM')));
  });
  const rp = await LogoutRp.start(issuer);
  t.teardown(() => rp.close());
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  t.teardown(() => db.end());

  const cli = async (args: string[], stdin?: string) => {
    const r = await runCli([...args, '--json'], base, stdin);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as Record<string, string>;
  };
  await cli(['users', 'create', '--email', 'kim@example.com', '--password-stdin'], 'kim password 123\n');
  // sid required: one notice per login session, so one user's sign-out everywhere writes many
  const clients = [];
  for (const label of ['x', 'y']) {
    const c = await cli(['clients', 'create', '--name', label, '--redirect-uri', REDIRECT, '--first-party', '--backchannel-logout-uri', rp.uri(label), '--backchannel-logout-session-required']);
    rp.register(label, c.client_id!, 'RS256', () => 'hang');
    clients.push(c);
  }
  const SESSIONS = 5;
  for (let i = 0; i < SESSIONS; i++) {
    const browser = new Browser(issuer);
    for (const c of clients) {
      await loginAndRedeem({ issuer, clientId: c.client_id!, secret: c.client_secret, redirectUri: REDIRECT, email: 'kim@example.com', password: 'kim password 123', scope: 'openid', browser });
    }
  }

  // revoked through the command (its own process): the replicas hear of it by NOTIFY
  const ended = await cli(['sessions', 'revoke', '--user', 'kim@example.com']);
  t.equal(Number(ended.sessions_ended), SESSIONS);
  const total = SESSIONS * clients.length;
  const notices = (await db.query<{ jti: string }>('SELECT jti FROM logout_notices')).rows.map((r) => r.jti);
  t.equal(notices.length, total, 'one notice per (client, session)');

  // every replica claims its share and the RP answers none of them: with at most PER_REPLICA in
  // flight on each, that many requests held open at once means every replica holds PER_REPLICA
  await waitFor(async () => (rp.held >= PER_REPLICA * servers.length ? true : undefined), 60000, 20);
  const victim = servers[2]!;
  victim.proc.kill('SIGKILL');
  t.equal(await victim.exited, null, 'killed by a signal while holding notices');
  const claimed = Number((await db.query('SELECT count(*) AS n FROM logout_notices WHERE claim IS NOT NULL AND delivered_at IS NULL')).rows[0].n);
  t.ok(claimed >= PER_REPLICA, `the dead replica's claims are still there, undelivered (${claimed} claimed)`);

  // the RP recovers: what is held is answered (the dead replica never hears it), the rest gets 200
  for (const label of ['x', 'y']) rp.setPolicy(label, () => 200);
  rp.releaseHeld();

  // the dead replica's claims fall due again when its lease ends; the survivors deliver them
  await waitFor(async () => {
    const r = await db.query('SELECT count(*) AS n FROM logout_notices WHERE delivered_at IS NULL');
    return Number(r.rows[0].n) === 0 ? true : undefined;
  }, 120000, 200);
  const received = new Set(rp.accepted.map((r) => r.claims.jti));
  t.same(notices.filter((j) => !received.has(j)), [], 'every notice reached the RP');
  t.same(rp.problems, [], 'every token valid');
  t.equal((await db.query('SELECT count(*) AS n FROM logout_notices WHERE failed_at IS NOT NULL')).rows[0].n, '0', 'none failed');
  for (const s of servers.slice(0, 2)) t.equal(s.proc.exitCode, null, 'the survivors run on');
});

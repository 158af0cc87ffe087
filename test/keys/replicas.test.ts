// Replicas on one Postgres database follow each other's key changes: at once through NOTIFY, after
// a lost LISTEN connection through the reload on reconnect, and in any case through the poll.
import t from 'tap';
import { sql } from 'kysely';
import { dropCreatedDatabases, hasPostgres, postgres, POSTGRES_SKIP_REASON } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { waitFor } from '../helpers/process.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { keyMaintenanceStep } from '../../src/keys/maintenance.js';
import { rotateKeys } from '../../src/keys/rotation.js';
import type { SigningAlg } from '../../src/core/config.js';

t.teardown(dropCreatedDatabases);

const agree = (envs: TestEnv[], alg: SigningAlg, kid: string) =>
  waitFor(async () => (envs.every((e) => e.rt.keystore.activeKey(alg)?.kid === kid && e.rt.keystore.signingKey(alg).kid === kid) ? true : undefined), 20000, 50);
const jwksKids = (e: TestEnv) => (JSON.parse(e.rt.keystore.jwksBody) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);

t.test('two runtimes on one Postgres agree on the active key', { skip: hasPostgres ? false : POSTGRES_SKIP_REASON }, async (t) => {
  const url = await postgres.create();
  // the poll is an hour away: what follows here is the NOTIFY
  const quiet = { KEY_POLL_SECONDS: '3600', KEY_PUBLISH_MARGIN_SECONDS: '3600', KEY_ROTATION_DAYS: '1' };
  const a = await createTestEnv(url, { env: quiet });
  t.teardown(() => a.close());
  const b = await createTestEnv(url, { env: quiet });
  t.teardown(() => b.close());
  const both = [a, b];
  const publish = 300 + 3600;
  const advance = (s: number) => {
    a.clock.advance(s);
    b.clock.set(a.clock.now());
  };
  t.equal(a.rt.keystore.activeKey('ES256')!.kid, b.rt.keystore.activeKey('ES256')!.kid, 'one key set, though both bootstrapped');
  t.equal((await a.rt.db.selectFrom('signing_keys').select('kid').execute()).length, 4);

  // a rotation made by A (as the admin API would)
  advance(publish);
  const r1 = await rotateKeys(a.rt, { actor: 'test' });
  await agree(both, 'ES256', r1.activated);
  t.pass('B follows A');
  t.ok(jwksKids(b).includes(r1.published_next), "B publishes A's new next key");

  // a rotation made by B (through the command, inside B)
  advance(publish);
  const r2 = await runCommand(['keys', 'rotate', '--alg', 'RS256', '--json'], cliContextFor(b.rt), undefined);
  t.equal(r2.code, 0, r2.stderr);
  await agree(both, 'RS256', (JSON.parse(r2.stdout) as { activated: string }).activated);
  t.pass('A follows B');

  // a scheduled rotation, made by whichever replica's maintenance step runs first
  advance(86400);
  const [stepA, stepB] = await Promise.all([keyMaintenanceStep(a.rt), keyMaintenanceStep(b.rt)]);
  const rotations = [...stepA, ...stepB].filter((x) => x.action === 'rotated');
  t.equal(rotations.filter((x) => x.alg === 'ES256').length, 1, 'one replica performed the ES256 rotation');
  await agree(both, 'ES256', rotations.find((x) => x.alg === 'ES256')!.kid);
  t.pass('both agree after the scheduled rotation');

  // a change that sends no NOTIFY, then the LISTEN connections drop: the reload on reconnect
  // catches up (the poll is an hour away)
  const retired = (await a.rt.db.selectFrom('signing_keys').select('kid').where('state', '=', 'retired').execute()).map((r) => r.kid);
  t.ok(retired.length >= 1);
  await new Promise((r) => setTimeout(r, 500)); // let the notifications of the steps above settle
  await a.rt.db.updateTable('signing_keys').set({ state: 'revoked', revoked_at: new Date(a.clock.now()), private_sealed: '' }).where('kid', '=', retired[0]!).execute();
  await new Promise((r) => setTimeout(r, 300));
  t.ok(jwksKids(b).includes(retired[0]!), 'without NOTIFY, B has not seen the change yet');
  const killed = await sql<{ n: number }>`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`.execute(a.rt.db);
  t.equal(killed.rows[0]!.n, 2, 'both LISTEN connections dropped');
  await waitFor(async () => (both.every((e) => !jwksKids(e).includes(retired[0]!)) ? true : undefined), 20000, 50);
  t.pass('both reloaded after reconnecting');
  // and NOTIFY works again on the new connection
  advance(publish);
  const r3 = await rotateKeys(b.rt, { actor: 'test' });
  await agree(both, 'ES256', r3.activated);
  t.pass('notifications flow again');
});

t.test('a replica that misses the NOTIFY follows within KEY_POLL_SECONDS', { skip: hasPostgres ? false : POSTGRES_SKIP_REASON }, async (t) => {
  const url = await postgres.create();
  const a = await createTestEnv(url, { env: { KEY_POLL_SECONDS: '3600', KEY_PUBLISH_MARGIN_SECONDS: '3600' } });
  t.teardown(() => a.close());
  const c = await createTestEnv(url, { env: { KEY_POLL_SECONDS: '1', KEY_PUBLISH_MARGIN_SECONDS: '60' } });
  t.teardown(() => c.close());
  c.clock.set(a.clock.now());
  const next = (await a.rt.db.selectFrom('signing_keys').select('kid').where('state', '=', 'next').where('alg', '=', 'ES256').executeTakeFirstOrThrow()).kid;
  t.ok(jwksKids(c).includes(next));
  // a change without NOTIFY (as if the notification were lost)
  await a.rt.db.updateTable('signing_keys').set({ state: 'revoked', revoked_at: new Date(a.clock.now()), private_sealed: '' }).where('kid', '=', next).execute();
  await waitFor(async () => (!jwksKids(c).includes(next) ? true : undefined), 20000, 50);
  t.pass('C reloaded on its poll');
  // C's poll also ran the maintenance step: the revoked next key was replaced
  await waitFor(async () => ((await a.rt.db.selectFrom('signing_keys').select('kid').where('state', '=', 'next').where('alg', '=', 'ES256').execute()).length === 1 ? true : undefined), 20000, 50);
  t.pass('and published a new next key');
});

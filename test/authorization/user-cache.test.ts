// /userinfo and /introspect answer from an in-process user cache. A change to the users table by
// any path (here: plain SQL, as an operator would) reaches every replica through the trigger's
// NOTIFY, at once: the test clock is frozen, so the cache's time limit never expires an entry and
// only the invalidation can make a change visible.
import t, { type Test } from 'tap';
import { sql } from 'kysely';
import { backends, dropCreatedDatabases, type Backend } from '../helpers/backends.js';
import { eventually, startReplicas } from '../helpers/replicas.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

async function userinfo(issuer: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function run(t: Test, backend: Backend): Promise<void> {
  const { a, envs, urls } = await startReplicas(t, backend);
  const replicas = envs.map((env, i) => ({ env, url: urls[i]! }));

  const userId = await createUser(a.rt, 'uma@example.com', 'uma password 1', ['--name', 'Uma']);
  const app = await createClient(a.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid profile email']);
  const { tokens } = await loginAndRedeem({ issuer: a.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'uma@example.com', password: 'uma password 1', scope: 'openid profile email' });
  const at = tokens.access_token;
  const introspect = async (url: string) => (await postForm(`${url}/introspect`, { token: at }, { clientId: app.clientId, secret: app.clientSecret })).body;

  for (const { url } of replicas) {
    const r = await userinfo(url, at);
    t.equal(r.status, 200, `userinfo on ${url}`);
    t.equal(r.body.name, 'Uma', 'the name as stored (now cached)');
    t.equal((await introspect(url)).active, true, 'introspection: active (user cached)');
  }

  await sql`UPDATE users SET name = 'Uma Renamed' WHERE id = ${userId}::uuid`.execute(a.rt.db);
  for (const { url } of replicas) {
    t.ok(await eventually(async () => (await userinfo(url, at)).body.name === 'Uma Renamed'), `a rename by plain SQL reaches ${url} with the clock frozen`);
  }

  if (backend.name === 'postgres') {
    const listeners = async () =>
      (await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`.execute(a.rt.db)).rows.map((r) => r.pid);
    const before = await listeners();
    t.equal(before.length, replicas.length, 'one LISTEN connection per replica carries every channel (keys, clients, users, denylist)');
    // cut every replica's notification connection: each reconnects, and the cache follows again
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`.execute(a.rt.db);
    t.ok(
      await eventually(async () => {
        const now = await listeners();
        return now.length === replicas.length && now.every((p) => !before.includes(p));
      }),
      'new notification connections replace the cut ones',
    );
    await sql`UPDATE users SET name = 'Uma Again' WHERE id = ${userId}::uuid`.execute(a.rt.db);
    for (const { url } of replicas) {
      t.ok(await eventually(async () => (await userinfo(url, at)).body.name === 'Uma Again'), `after the reconnection a rename still reaches ${url}`);
    }
    for (const { url } of replicas) await userinfo(url, at); // cached again
    await sql`UPDATE users SET name = 'Uma Third' WHERE id = ${userId}::uuid`.execute(a.rt.db);
    for (const { url } of replicas) {
      t.ok(await eventually(async () => (await userinfo(url, at)).body.name === 'Uma Third'), `…and the next one (${url})`);
    }
  }

  await sql`UPDATE users SET disabled = true WHERE id = ${userId}::uuid`.execute(a.rt.db);
  for (const { url } of replicas) {
    t.ok(await eventually(async () => (await userinfo(url, at)).status === 401), `a disabled user’s token is refused by /userinfo on ${url}`);
    const r = await userinfo(url, at);
    t.equal(r.body.error, 'invalid_token');
    t.equal((await introspect(url)).active, false, 'and is inactive at /introspect');
  }

  await sql`UPDATE users SET disabled = false WHERE id = ${userId}::uuid`.execute(a.rt.db);
  for (const { url } of replicas) {
    t.ok(await eventually(async () => (await userinfo(url, at)).status === 200), `re-enabled: served again on ${url}`);
  }

  // the deleted user's families go with it (ON DELETE CASCADE); the access token is still a valid JWT
  await sql`DELETE FROM users WHERE id = ${userId}::uuid`.execute(a.rt.db);
  for (const { url } of replicas) {
    t.ok(await eventually(async () => (await userinfo(url, at)).status === 401), `a deleted user’s token is refused on ${url}`);
    t.equal((await introspect(url)).active, false, 'and is inactive at /introspect');
  }
}

for (const backend of backends()) {
  t.test(`user changes reach the cache of every replica (${backend.name})`, (t) => run(t, backend));
}

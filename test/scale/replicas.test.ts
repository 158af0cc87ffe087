// Scale out: three Latchkey processes (the built server) on one Postgres, requests spread across
// them round-robin. Refresh chains hop replicas; a revocation on one is seen by the others; one
// replica is killed (SIGKILL) mid-load; afterwards the database holds its invariants and the
// survivors serve on.
import t from 'tap';
import { postgres, postgresOnly, dropCreatedDatabases } from '../helpers/backends.js';
import { freePort, TEST_KEK } from '../helpers/runtime.js';
import { runCli, startServer, waitFor, type ServerProcess } from '../helpers/process.js';
import { loginAndRedeem, postForm, tokenRequest } from '../helpers/flow.js';
import pg from 'pg';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

t.test('three replicas on one Postgres', { skip: postgresOnly }, async (t) => {
  const databaseUrl = await postgres.create();
  const ports = [await freePort(), await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${ports[0]}`;
  const base = { DATABASE_URL: databaseUrl, LATCHKEY_KEK: TEST_KEK, ISSUER: issuer, LOG_LEVEL: 'warn' };
  const servers: ServerProcess[] = await Promise.all(ports.map((p) => startServer({ ...base, PORT: String(p) })));
  t.teardown(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGTERM')));
  });
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);

  const cli = async (args: string[], stdin?: string) => {
    const r = await runCli([...args, '--json'], base, stdin);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as Record<string, string>;
  };
  await cli(['users', 'create', '--email', 'sam@example.com', '--password-stdin'], 'sam password 123\n');
  const app = await cli(['clients', 'create', '--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', 'https://api.example.com']);
  const rs = await cli(['clients', 'create', '--name', 'RS', '--grant-types', 'client_credentials', '--scopes', 'x', '--resource-server', 'https://api.example.com']);
  const auth = { clientId: app.client_id!, secret: app.client_secret };

  // the login pages post back to the issuer (replica 0); token traffic goes anywhere
  const chains: string[] = [];
  // rotations answered with 200 (each moved one family's generation on by one)
  let answered = 0;
  for (let i = 0; i < 6; i++) {
    const { tokens } = await loginAndRedeem({ issuer, clientId: auth.clientId, secret: auth.secret, redirectUri: REDIRECT, email: 'sam@example.com', password: 'sam password 123', scope: 'openid offline_access' });
    chains.push(tokens.refresh_token!);
  }

  await t.test('refresh chains hop replicas round-robin', async (t) => {
    let n = 0;
    for (let round = 0; round < 6; round++) {
      for (let c = 0; c < chains.length; c++) {
        const r = await tokenRequest(urls[n++ % 3]!, { grant_type: 'refresh_token', refresh_token: chains[c]! }, auth);
        t.equal(r.status, 200, `chain ${c} round ${round}`);
        if (r.status === 200) answered++;
        chains[c] = r.body.refresh_token as string;
      }
    }
  });

  await t.test('a revocation on one replica is seen by the others', async (t) => {
    const r = await tokenRequest(urls[1]!, { grant_type: 'refresh_token', refresh_token: chains[0]! }, auth);
    if (r.status === 200) answered++;
    chains[0] = r.body.refresh_token as string;
    const at = r.body.access_token as string;
    for (const u of urls) t.equal((await postForm(`${u}/introspect`, { token: at }, { clientId: rs.client_id!, secret: rs.client_secret })).body.active, true);
    t.equal((await postForm(`${urls[0]}/revoke`, { token: at }, auth)).status, 200);
    for (const u of urls.slice(1)) {
      await waitFor(async () => ((await postForm(`${u}/introspect`, { token: at }, { clientId: rs.client_id!, secret: rs.client_secret })).body.active === false ? true : undefined), 15000);
      t.pass(`${u} sees the revocation`);
      await waitFor(async () => ((await fetch(`${u}/userinfo`, { headers: { authorization: `Bearer ${at}` } })).status === 401 ? true : undefined), 15000);
    }
  });

  await t.test('a replica killed mid-load; invariants hold; survivors serve on', async (t) => {
    let errorsOnSurvivors = 0;
    const survivors = [urls[0]!, urls[1]!];
    const work = chains.map(async (_, c) => {
      for (let i = 0; i < 15; i++) {
        const target = urls[(c + i) % 3]!;
        let r;
        try {
          r = await tokenRequest(target, { grant_type: 'refresh_token', refresh_token: chains[c]! }, auth);
        } catch {
          // the killed replica: retry once on a survivor with the same token (a real client would)
          try {
            r = await tokenRequest(survivors[i % 2]!, { grant_type: 'refresh_token', refresh_token: chains[c]! }, auth);
          } catch {
            errorsOnSurvivors++;
            continue;
          }
        }
        if (r.status === 200) {
          chains[c] = r.body.refresh_token as string;
          answered++;
        } else if (r.status >= 500) errorsOnSurvivors++;
        else break; // the chain died (a rotation committed by the killed replica): the user logs in again
      }
    });
    await new Promise((res) => setTimeout(res, 150));
    servers[2]!.proc.kill('SIGKILL');
    await Promise.all(work);
    t.equal(servers[2]!.proc.signalCode ?? (await new Promise((r) => servers[2]!.proc.once('exit', (_c, sig) => r(sig)))), 'SIGKILL', 'the replica was killed');
    t.equal(errorsOnSurvivors, 0, 'no 5xx and no connection errors from the survivors');

    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      // refresh tokens are sealed: a rotation writes no token row, and the family's generation is
      // its only chain state — one live token per family by construction
      const tokenRows = await db.query(`SELECT 1 FROM refresh_tokens`);
      t.equal(tokenRows.rowCount, 0, 'no token rows are written');
      const gens = await db.query<{ total: string }>(`SELECT coalesce(sum(generation), 0)::text AS total FROM refresh_families WHERE client_id = $1`, [auth.clientId]);
      const total = Number(gens.rows[0]!.total);
      // a rotation the killed replica committed but never answered: at most one per chain (its
      // retry on a survivor is then a reuse, and the chain ends)
      t.ok(total >= answered && total <= answered + chains.length, `the generations (${total}) count the answered rotations (${answered}), no half-done ones`);
      const revokedButLive = await db.query(
        `SELECT f.id FROM refresh_families f
         WHERE f.revoked_at IS NOT NULL AND f.access_expires_at > now()
           AND NOT EXISTS (SELECT 1 FROM denylist d WHERE d.jti = 'family:' || f.id AND d.expires_at >= f.access_expires_at)`,
      );
      t.equal(revokedButLive.rowCount, 0, 'no family both revoked and with a live (non-denylisted) access token');
    } finally {
      await db.end();
    }

    // the survivors serve on
    for (let c = 0; c < chains.length; c++) {
      const r = await tokenRequest(survivors[c % 2]!, { grant_type: 'refresh_token', refresh_token: chains[c]! }, auth);
      t.ok(r.status === 200 || r.body.error === 'invalid_grant', `chain ${c}: served (${r.status})`);
      t.ok(r.status < 500);
    }
    const disco = await fetch(`${survivors[1]}/.well-known/openid-configuration`);
    t.equal(disco.status, 200);
  });
});

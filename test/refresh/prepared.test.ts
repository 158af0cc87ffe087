// The hot statements (the login-session lookup behind the session cache, code redemption, refresh
// rotation) run as named prepared statements on Postgres, and as plain statements with
// PG_PREPARED_STATEMENTS=false (for poolers that cannot keep them). With one pooled connection,
// pg_prepared_statements on that connection shows which.
import t from 'tap';
import { sql } from 'kysely';
import { dropCreatedDatabases, postgres, postgresOnly } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { loginAndRedeem, tokenRequest } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

for (const prepared of [true, false]) {
  t.test(`PG_PREPARED_STATEMENTS=${prepared}`, { skip: postgresOnly }, async (t) => {
    const e = await createTestEnv(await postgres.create(), { listen: true, env: { PG_POOL_SIZE: '1', PG_PREPARED_STATEMENTS: String(prepared) } });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    await createUser(e.rt, 'pia@example.com', 'pia password 1');
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid offline_access']);
    const auth = { clientId: app.clientId, secret: app.clientSecret };
    const first = await loginAndRedeem({ issuer, ...auth, redirectUri: REDIRECT, email: 'pia@example.com', password: 'pia password 1', scope: 'openid offline_access' });
    // a second authorization with the login session (SSO)
    const second = await loginAndRedeem({ issuer, ...auth, redirectUri: REDIRECT, email: 'pia@example.com', password: 'pia password 1', scope: 'openid offline_access', browser: first.browser });
    let rt = second.tokens.refresh_token!;
    for (let i = 0; i < 3; i++) {
      const r = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: rt }, auth);
      t.equal(r.status, 200, `refresh ${i + 1}`);
      rt = r.body.refresh_token as string;
    }
    t.equal((await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: second.tokens.refresh_token! }, auth)).body.error, 'invalid_grant', 'a replay is still refused');

    const rows = await e.rt.dbh.prepared<{ name: string }>('test_list_prepared', sql`SELECT name FROM pg_prepared_statements ORDER BY name`.compile(e.rt.db));
    const names = rows.map((r) => r.name.replace(/_\d+$/, ''));
    for (const hot of ['latchkey_code_redeem', 'latchkey_refresh_rotate', 'latchkey_session_find']) {
      if (prepared) t.ok(names.includes(hot), `${hot} is a prepared statement on the connection`);
      else t.notOk(names.includes(hot), `${hot} is not prepared`);
    }
  });
}

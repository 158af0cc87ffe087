// Issue 24: every admin operation has one implementation (src/ops/), and its surfaces — the CLI
// and the admin API — give the same results and the same side effects. Each operation is run
// once at the ops level (what it changes, its audit event, this replica's copies refreshed before
// it returns), then through the CLI and through the admin API on two identical users, and the
// results and effects compared. Both databases.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { runCommand } from '../../src/cli/registry.js';
import { loginAndRedeem, tokenRequest } from '../helpers/flow.js';
import { opsContextFor } from '../../src/ops/runtime.js';
import { OpsError } from '../../src/ops/context.js';
import * as users from '../../src/ops/users.js';
import * as grants from '../../src/ops/grants.js';
import { readAudit } from '../../src/ops/audit.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const PW = 'ops password 1';

for (const backend of backends()) {
  t.test(`admin operations on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid offline_access']);
    const admin = await createClient(e.rt, ['--name', 'Admin', '--admin']);
    const adminToken = async () =>
      (await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'latchkey:admin', resource: `${issuer}/admin` }, { clientId: admin.clientId, secret: admin.clientSecret })).body.access_token as string;
    const api = async (method: string, path: string, body?: unknown) => {
      const headers: Record<string, string> = { authorization: `Bearer ${await adminToken()}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${issuer}/admin${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    // the CLI as `latchkey` runs it against a running server: over the local socket, in the server's context
    const cli = async (_rt: unknown, argv: string[], stdin?: string): Promise<Record<string, unknown>> => {
      const r = await runCommand([...argv, '--json'], e.app.latchkeyOps, stdin);
      if (r.code !== 0) throw new Error(`latchkey ${argv.join(' ')} failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    const login = async (email: string) =>
      (await loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email, password: PW, scope: 'openid offline_access' })).tokens;
    const userinfo = async (token: string) => (await fetch(`${issuer}/userinfo`, { headers: { authorization: `Bearer ${token}` } })).status;
    const live = async (userId: string) => (await e.rt.db.selectFrom('refresh_families').select('id').where('user_id', '=', userId).where('revoked_at', 'is', null).execute()).length;
    const events = async (userId: string) => (await e.rt.db.selectFrom('audit_events').select(['type', 'actor']).where('user_id', '=', userId).where('type', 'like', 'admin.%').where('type', '!=', 'admin.user_created').execute()).map((r) => `${r.type} by ${r.actor}`);
    const shape = (o: Record<string, unknown>) => Object.keys(o).filter((k) => !['id', 'user_id', 'email', 'created_at'].includes(k)).sort();

    await t.test('at the ops level: the change, this replica at once, the audit event', async (t) => {
      const id = await createUser(e.rt, 'ops@example.com', PW);
      const tokens = await login('ops@example.com');
      t.equal(await userinfo(tokens.access_token), 200);
      // the admin API's own context: the app's copies (user cache, denylist view)
      const ctx = e.app.latchkeyOps;
      const out = await users.logoutEverywhere(ctx, { actor: 'test', ip: '192.0.2.1' }, 'OPS@example.com');
      t.same(out, { user_id: id, families_revoked: 1, sessions_ended: 1 });
      t.equal(await live(id), 0, 'the family is revoked');
      t.equal(await userinfo(tokens.access_token), 401, 'and its access token is refused by this replica before the call returned');
      const audit = await readAudit(ctx, { user: id, type: 'admin.logout_everywhere' });
      t.equal(audit.length, 1, 'one audit event');
      t.match(audit[0], { actor: 'test', ip: '192.0.2.1' });
      // refusals are OpsErrors with a code every surface maps
      await t.rejects(users.disableUser(ctx, { actor: 'test' }, 'nobody@example.com'), new OpsError('not_found', 'no such user: nobody@example.com'));
      await t.rejects(grants.revokeGrant(ctx, { actor: 'test' }, 'not-a-uuid'), { code: 'not_found' });
      await t.rejects(grants.listGrants(ctx, {}), { code: 'invalid_request' });
      await t.rejects(users.setPassword(ctx, { actor: 'test' }, id, 'short'), { code: 'invalid_request' });
      t.equal(await live(id), 0, 'a refusal changes nothing');
      // outside a server (the CLI's own process) there are no local copies: the same change
      const bare = { ...opsContextFor(e.rt), local: undefined };
      const again = await login('ops@example.com');
      const disabled = await users.disableUser(bare, { actor: 'cli' }, id);
      t.equal(disabled.disabled, true);
      t.equal(disabled.families_revoked, 1);
      t.equal(await live(id), 0);
      t.equal((await users.enableUser(bare, { actor: 'cli' }, id)).disabled, false);
      t.ok(again.refresh_token, 'the family that was revoked had a refresh token');
    });

    const cases: Array<{ name: string; cli: (email: string) => string[]; stdin?: string; api: (email: string) => [string, string, unknown?]; event: string; ends: boolean }> = [
      { name: 'logout everywhere', cli: (u) => ['sessions', 'revoke', '--user', u], api: (u) => ['POST', `/users/${u}/logout-everywhere`], event: 'admin.logout_everywhere', ends: true },
      { name: 'disable', cli: (u) => ['users', 'disable', u], api: (u) => ['POST', `/users/${u}/disable`], event: 'admin.user_disabled', ends: true },
      { name: 'new password', cli: (u) => ['users', 'set-password', u, '--password-stdin'], stdin: 'a new password 1\n', api: (u) => ['PUT', `/users/${u}/password`, { password: 'a new password 1' }], event: 'admin.password_changed', ends: true },
      { name: 'enable', cli: (u) => ['users', 'enable', u], api: (u) => ['POST', `/users/${u}/enable`], event: 'admin.user_enabled', ends: false },
    ];
    for (const c of cases) {
      await t.test(`${c.name}: the CLI and the admin API give the same result and effects`, async (t) => {
        const slug = c.name.replace(/\W+/g, '-');
        const a = `cli-${slug}@example.com`;
        const b = `api-${slug}@example.com`;
        const ids = [await createUser(e.rt, a, PW), await createUser(e.rt, b, PW)];
        const tokens = [await login(a), await login(b)];
        const viaCli = await cli(e.rt, c.cli(a), c.stdin);
        const [method, path, body] = c.api(b);
        const viaApi = await api(method, path, body);
        t.equal(viaApi.status, 200);
        if (c.name === 'new password') {
          // the CLI also names the user by `id` (older scripts read it); otherwise the same fields
          t.same(shape(viaCli).filter((k) => k !== 'id'), shape(viaApi.body));
        } else t.same(shape(viaCli), shape(viaApi.body), 'the same fields');
        for (const k of ['families_revoked', 'sessions_ended', 'disabled']) t.equal(viaCli[k], viaApi.body[k], `the same ${k}`);
        for (let i = 0; i < 2; i++) {
          t.equal(await live(ids[i]!), c.ends ? 0 : 1, `${i ? 'API' : 'CLI'}: families ${c.ends ? 'revoked' : 'kept'}`);
          t.equal(await userinfo(tokens[i]!.access_token), c.ends ? 401 : 200, `${i ? 'API' : 'CLI'}: the access token ${c.ends ? 'is refused' : 'still works'}`);
        }
        t.same(await events(ids[0]!), [`${c.event} by cli`], 'CLI: its audit event');
        t.same(await events(ids[1]!), [`${c.event} by client:${admin.clientId}`], 'API: the same event, by the admin client');
      });
    }

    await t.test('a grant revoked by id, and a client’s grants: the same through both', async (t) => {
      const id = await createUser(e.rt, 'grants@example.com', PW);
      await login('grants@example.com');
      await login('grants@example.com');
      const listed = (await api('GET', '/users/grants@example.com/grants')).body.grants as Array<{ id: string }>;
      const listedOld = (await api('GET', '/users/grants@example.com/sessions')).body.sessions as Array<{ id: string }>;
      const viaCliList = (await cli(e.rt, ['grants', 'list', '--user', 'grants@example.com'])) as unknown as Array<{ id: string }>;
      t.same(listed.map((g) => g.id).sort(), viaCliList.map((g) => g.id).sort(), 'the same grants');
      t.same(listedOld, listed, '/sessions is the same list');
      const [first, second] = listed;
      const viaApi = await api('DELETE', `/grants/${first!.id}`);
      t.same(viaApi.body, { id: first!.id, revoked: true, already_revoked: false });
      const viaCli = await cli(e.rt, ['grants', 'revoke', '--family', second!.id]);
      t.match(viaCli, { id: second!.id, revoked: true, already_revoked: false });
      t.equal(await live(id), 0);
      t.same((await api('DELETE', `/sessions/${first!.id}`)).body.already_revoked, true, 'again: already revoked');
      t.equal((await api('DELETE', '/grants/00000000-0000-4000-8000-000000000000')).status, 404);
      await t.rejects(cli(e.rt, ['grants', 'revoke', '--family', '00000000-0000-4000-8000-000000000000']), /no such session/);
    });
  });
}

// Issue 17 item 3 (RFC 7662 §4): being allowed to request tokens for an audience (--audiences) does
// not make a client the resource server of that audience. Only a client registered with
// --resource-server AUDIENCE (for one of the token's audiences), or the token's own client, sees an
// access token at /introspect; every other caller gets {"active": false}.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { cli, createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest } from '../helpers/flow.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const API = 'https://api.example.com';
const OTHER = 'https://other.example.com';

for (const backend of backends()) {
  t.test(`introspection rights on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    await createUser(e.rt, 'ria@example.com', 'ria password 1');
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', API, '--scopes', 'openid offline_access api:read']);
    // an ordinary relying party that may request tokens for the same API
    const nosy = await createClient(e.rt, ['--name', 'Nosy', '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code,client_credentials', '--audiences', API, '--scopes', 'openid api:read']);
    const rs = await createClient(e.rt, ['--name', 'API', '--grant-types', 'client_credentials', '--scopes', 'introspect', '--resource-server', API]);
    const both = await createClient(e.rt, ['--name', 'Two APIs', '--grant-types', 'client_credentials', '--scopes', 'introspect', '--resource-server', OTHER, '--resource-server', API]);
    const elsewhere = await createClient(e.rt, ['--name', 'Other API', '--grant-types', 'client_credentials', '--scopes', 'introspect', '--resource-server', OTHER]);
    const introspect = async (c: TestClient, token: string) => (await postForm(`${issuer}/introspect`, { token }, { clientId: c.clientId, secret: c.clientSecret })).body;

    const { tokens } = await loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'ria@example.com', password: 'ria password 1', scope: 'openid offline_access api:read' });

    await t.test("a user's access token", async (t) => {
      t.same(await introspect(nosy, tokens.access_token), { active: false }, 'a client with --audiences for the API sees nothing');
      const seen = await introspect(rs, tokens.access_token);
      t.equal(seen.active, true, 'the registered resource server sees it');
      t.equal(seen.client_id, app.clientId);
      t.equal((await introspect(both, tokens.access_token)).active, true, 'a resource server of several audiences, one of them the token’s');
      t.same(await introspect(elsewhere, tokens.access_token), { active: false }, 'the resource server of another audience sees nothing');
      t.equal((await introspect(app, tokens.access_token)).active, true, 'the token’s own client sees it');
      t.same(await introspect(rs, tokens.refresh_token!), { active: false }, 'refresh tokens stay with their client');
    });

    await t.test('client_credentials tokens', async (t) => {
      const cc = await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'api:read' }, { clientId: nosy.clientId, secret: nosy.clientSecret });
      t.equal(cc.status, 200);
      const at = cc.body.access_token as string;
      t.equal((await introspect(nosy, at)).active, true, 'its own client');
      t.equal((await introspect(rs, at)).active, true, 'the API’s resource server');
      t.same(await introspect(app, at), { active: false }, 'another client that may request tokens for the API');
    });

    await t.test('the CLI shows and checks --resource-server', async (t) => {
      const listed = (await runCommand(['clients', 'list', '--json'], cliContextFor(e.rt), undefined)).stdout;
      const byId = new Map((JSON.parse(listed) as Array<{ client_id: string; resource_servers: string[] }>).map((c) => [c.client_id, c.resource_servers]));
      t.same(byId.get(both.clientId), [OTHER, API], 'clients list shows resource_servers');
      t.same(byId.get(nosy.clientId), [], 'none unless registered');
      const created = await cli(e.rt, ['clients', 'create', '--name', 'X', '--grant-types', 'client_credentials', '--resource-server', API]);
      t.same(created.resource_servers, [API], 'clients create shows it');
      for (const [what, args] of [
        ['not a URI', ['--grant-types', 'client_credentials', '--resource-server', 'api']],
        ['the issuer’s userinfo audience', ['--grant-types', 'client_credentials', '--resource-server', `${issuer}/userinfo`]],
        ['the issuer’s admin audience', ['--grant-types', 'client_credentials', '--resource-server', `${issuer}/admin`]],
        ['a public client', ['--public', '--redirect-uri', REDIRECT, '--resource-server', API]],
      ] as Array<[string, string[]]>) {
        const r = await runCommand(['clients', 'create', '--name', 'Bad', ...args, '--json'], cliContextFor(e.rt), undefined);
        t.not(r.code, 0, `refused: ${what}`);
        t.match(r.stderr, /resource-server/, `${what}: the error names the option`);
      }
    });
  });
}

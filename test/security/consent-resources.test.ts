// Issue 17 item 8: remembered consent covers the audiences (RFC 8707 resources) as well as the
// scopes. A request for a resource the user has not approved for this client shows the consent
// page again (and prompt=none gets consent_required); an approved one goes straight back.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { authorizationUrl, pkce, tokenRequest } from '../helpers/flow.js';
import { Browser, authorizeWithLogin, parseForm, type Step } from '../helpers/http-login.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const API1 = 'https://api1.example.com';
const API2 = 'https://api2.example.com';
const API3 = 'https://api3.example.com';

for (const backend of backends()) {
  t.test(`consent and resources on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    await createUser(e.rt, 'cy@example.com', 'cy password 1');
    // not first-party: the user is asked
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--audiences', `${API1},${API2}`, '--scopes', 'openid api:read']);
    const browser = new Browser(issuer);
    const url = (extra: Record<string, string>) => authorizationUrl(issuer, app.clientId, REDIRECT, { scope: 'openid api:read', ...extra });
    const step = async (extra: Record<string, string>) => browser.follow(await browser.get(url(extra)));
    const isConsent = (s: Step) => s.status === 200 && s.body.includes('name="decision"');
    const isCode = (s: Step) => Boolean(s.location?.startsWith(REDIRECT) && new URL(s.location).searchParams.get('code'));
    const approve = async (s: Step) => {
      const { action, fields } = parseForm(s.body);
      return browser.follow(await browser.post(action, { ...fields, decision: 'approve' }));
    };

    await t.test('consent for one resource does not cover another', async (t) => {
      const first = await authorizeWithLogin(browser, url({ resource: API1 }), 'cy@example.com', 'cy password 1');
      t.ok(isCode(first), 'logged in and approved for API1');
      t.ok(isCode(await step({ resource: API1 })), 'API1 again: remembered, no consent page');
      const second = await step({ resource: API2 });
      t.ok(isConsent(second), 'API2: the consent page again');
      t.match(second.body, API2, 'naming the new resource');
      const none = await step({ resource: API2, prompt: 'none' });
      t.equal(new URL(none.location!).searchParams.get('error'), 'consent_required', 'prompt=none: consent_required');
      t.ok(isCode(await approve(second)), 'approved');
      t.ok(isCode(await step({ resource: API2 })), 'API2 now remembered');
      t.ok(isCode(await step({ resource: API1 })), 'API1 still remembered');
    });

    await t.test('a request without resource needs every audience of the client approved', async (t) => {
      // the code of a request without resource may be exchanged for any of the client's audiences
      t.ok(isCode(await step({})), 'API1 and API2 approved: covered');
      await createUser(e.rt, 'dee@example.com', 'dee password 1');
      const other = new Browser(issuer);
      const { verifier, challenge } = pkce();
      const page = await authorizeWithLogin(other, url({ resource: API1, code_challenge: challenge }), 'dee@example.com', 'dee password 1');
      t.ok(isCode(page), 'dee approved API1 only');
      const code = new URL(page.location!).searchParams.get('code')!;
      const r = await tokenRequest(issuer, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, resource: API2 }, { clientId: app.clientId, secret: app.clientSecret });
      t.equal(r.body.error, 'invalid_target', 'and cannot widen the code to API2 at /token');
      const noResource = await other.follow(await other.get(url({})));
      t.ok(isConsent(noResource), 'dee without resource: asked (the code could reach API2)');
      t.match(noResource.body, API2);
    });

    await t.test('another client: its own consent, covering its only audience', async (t) => {
      const app3 = await createClient(e.rt, ['--name', 'App3', '--redirect-uri', REDIRECT, '--audiences', API3, '--scopes', 'openid']);
      const u = (extra: Record<string, string>) => authorizationUrl(issuer, app3.clientId, REDIRECT, { scope: 'openid', ...extra });
      const first = await browser.follow(await browser.get(u({})));
      t.ok(isConsent(first), 'another client: its own consent');
      t.ok(isCode(await approve(first)));
      t.ok(isCode(await browser.follow(await browser.get(u({ resource: API3 })))), 'its only audience was covered by the request without resource');
    });
  });
}

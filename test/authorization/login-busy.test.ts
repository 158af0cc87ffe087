// A full password-hashing queue (issue 14): the login form's POST gets a 503 with Retry-After and
// a page that brings the browser back to the sign-in form by itself (a meta refresh), not an error
// page; once the queue has room, the same interaction logs in.
import t from 'tap';
import { createPasswordHasher, type PasswordHasher } from '../../src/accounts/passwords.js';
import { TemporarilyUnavailable } from '../../src/core/errors.js';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { authorizationUrl } from '../helpers/flow.js';
import { Browser, parseForm } from '../helpers/http-login.js';
import { createTestEnv } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'https://rp.example/cb';

for (const backend of backends()) {
  t.test(`login while the hashing queue is full (${backend.name})`, async (t) => {
    const real = createPasswordHasher();
    let full = true;
    const passwords: PasswordHasher = {
      ...real,
      verify: (h, p) => (full ? Promise.reject(new TemporarilyUnavailable('the server is busy; try again shortly', 1)) : real.verify(h, p)),
      verifyDummy: (p) => real.verifyDummy(p),
    };
    const env = await createTestEnv(await backend.create(), { listen: true, passwords });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const client = await createClient(env.rt, ['--name', 'App', '--first-party', '--redirect-uri', REDIRECT]);
    await createUser(env.rt, 'busy@example.com', 'correct horse battery');

    const browser = new Browser(issuer);
    const login = await browser.follow(await browser.get(authorizationUrl(issuer, client.clientId, REDIRECT)));
    t.equal(login.status, 200, 'the login page');
    const { action, fields } = parseForm(login.body);
    const interactionUrl = action.replace(/\/login$/, '');

    const busy = await browser.post(action, { ...fields, username: 'busy@example.com', password: 'correct horse battery' });
    t.equal(busy.status, 503, '503 while the queue is full');
    t.equal(busy.res.headers.get('retry-after'), '1', 'with Retry-After');
    t.equal(busy.res.headers.get('cache-control'), 'no-store', 'not cached');
    const refresh = /<meta http-equiv="refresh" content="(\d+);url=([^"]+)">/.exec(busy.body);
    t.ok(refresh, 'the page reloads itself');
    t.equal(refresh?.[1], '1', 'after Retry-After seconds');
    // the interaction's page, with its sealed request (HTML-escaped in the attribute)
    t.equal(refresh?.[2]?.split('?')[0], interactionUrl, 'to this interaction’s sign-in form');
    t.match(refresh?.[2], /\?s=/, 'with its sealed request');
    t.notMatch(busy.body, /This request cannot be completed/, 'not the error page');
    t.notMatch(busy.body, /correct horse battery/, 'the password is not echoed');

    full = false;
    const again = await browser.get(refresh![2]!.replaceAll('&amp;', '&'));
    t.equal(again.status, 200, 'the reload shows the sign-in form again');
    const f2 = parseForm(again.body);
    const done = await browser.follow(await browser.post(f2.action, { ...f2.fields, username: 'busy@example.com', password: 'correct horse battery' }));
    t.ok(done.location?.startsWith(REDIRECT) && new URL(done.location).searchParams.get('code'), 'and the login then completes with a code');
  });
}

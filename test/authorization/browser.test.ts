// A real browser on the real pages: headless Chromium opens the authorization URL, signs in (once
// with a wrong password), approves consent and lands on the relying party's redirect URI — a small
// HTTP server on another loopback port — with code, state and iss; the code is then redeemed with
// the PKCE verifier. The redirect after the consent POST goes to another origin, which the page's
// CSP `form-action` must allow (Chromium enforces form-action on redirects).
import t from 'tap';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import type { BrowserContext, Page } from 'playwright-core';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { chromiumSkip, launchChromium } from '../helpers/chromium.js';

t.teardown(dropCreatedDatabases);

const SCREENSHOT = '/tmp/latchkey-login.png';
const PASSWORD = 'correct horse battery';

interface RelyingParty {
  callback: string;
  hits: URL[];
  close(): Promise<void>;
}

/** The client's redirect URI: records each callback and shows a plain page. */
async function startRelyingParty(): Promise<RelyingParty> {
  const hits: URL[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/callback') hits.push(url);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Notes</title><p id="rp">back at the app</p>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    callback: `http://127.0.0.1:${port}/callback`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  return { verifier, challenge: crypto.createHash('sha256').update(verifier).digest('base64url') };
}

/** Console lines of a page (Chromium reports CSP violations there). */
function watchConsole(page: Page): string[] {
  const lines: string[] = [];
  page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
  return lines;
}

t.test('headless Chromium', { skip: chromiumSkip }, async (t) => {
  const chromium = await launchChromium();
  t.teardown(() => chromium.close());
  let screenshotTaken = false;

  for (const backend of backends()) {
    t.test(`login and consent in Chromium on ${backend.name}`, async (t) => {
      const env = await createTestEnv(await backend.create(), { listen: true });
      t.teardown(() => env.close());
      const rp = await startRelyingParty();
      t.teardown(() => rp.close());
      const { issuer } = env.config;
      const userId = await createUser(env.rt, 'grace@example.com', PASSWORD, ['--name', 'Grace Hopper']);
      const client = await createClient(env.rt, ['--name', 'Notes <App>', '--redirect-uri', rp.callback, '--scopes', 'openid profile email']);

      const context: BrowserContext = await chromium.newContext();
      t.teardown(() => context.close());
      const page = await context.newPage();
      const consoleLines = watchConsole(page);

      const { verifier, challenge } = pkce();
      const state = crypto.randomBytes(12).toString('base64url');
      const nonce = crypto.randomBytes(12).toString('base64url');
      const authUrl = new URL(`${issuer}/authorize`);
      authUrl.search = new URLSearchParams({
        client_id: client.clientId,
        redirect_uri: rp.callback,
        response_type: 'code',
        scope: 'openid profile email',
        state,
        nonce,
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }).toString();

      // the login page
      const first = await page.goto(authUrl.href, { waitUntil: 'load' });
      t.equal(first?.status(), 200);
      t.ok(page.url().startsWith(`${issuer}/interaction/`), 'redirected to the login page');
      t.equal(await page.title(), 'Sign in');
      t.equal(await page.textContent('h1'), 'Sign in to continue to Notes <App>', 'the client name, escaped and shown as text');
      t.equal(await page.getAttribute('#username', 'autocomplete'), 'username');
      t.equal(await page.getAttribute('#password', 'autocomplete'), 'current-password');
      // the stylesheet loaded under the CSP (style-src 'self')
      t.equal(await page.$eval('button[type=submit]', (el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor), 'rgb(36, 81, 183)', 'styled');
      if (!screenshotTaken) {
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        screenshotTaken = true;
      }

      // a wrong password: the generic message, still on the login form
      await page.fill('#username', 'grace@example.com');
      await page.fill('#password', 'not my password');
      await Promise.all([page.waitForURL((u) => u.pathname.endsWith('/login')), page.click('button[type=submit]')]);
      t.equal((await page.textContent('.error'))?.trim(), 'The email or password is incorrect.');
      t.equal(await page.inputValue('#username'), 'grace@example.com', 'the email is kept');

      // the right password: the consent page
      await page.fill('#password', PASSWORD);
      await Promise.all([page.waitForSelector('button[value=approve]'), page.click('button[type=submit]')]);
      t.match(await page.textContent('h1'), 'Notes <App> wants to access your account');
      t.match(await page.textContent('main'), 'Signed in as grace@example.com');
      t.match(await page.textContent('ul'), 'See your email address');
      const cookies = await context.cookies(issuer);
      const session = cookies.find((c) => c.name === 'lk_session');
      t.ok(session, 'a session cookie');
      t.equal(session?.httpOnly, true);
      t.equal(session?.sameSite, 'Lax');
      t.equal(session?.path, '/');

      // Allow: the POST is answered 303 to the client's origin, which form-action must permit
      await Promise.all([page.waitForURL((u) => u.href.startsWith(rp.callback)), page.click('button[value=approve]')]);
      t.equal(await page.textContent('#rp'), 'back at the app', 'the browser reached the relying party');
      t.equal(rp.hits.length, 1, 'one callback');
      const cb = rp.hits[0]!;
      t.equal(cb.searchParams.get('state'), state);
      t.equal(cb.searchParams.get('iss'), issuer);
      t.equal(cb.searchParams.get('error'), null);
      const code = cb.searchParams.get('code');
      t.ok(code, 'a code');
      t.notMatch(consoleLines.join('\n'), /Content Security Policy|form-action/i, 'no CSP violation on the way');

      // the code, redeemed with the PKCE verifier
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: code!, redirect_uri: rp.callback, code_verifier: verifier }),
      });
      t.equal(res.status, 200);
      const tokens = (await res.json()) as { id_token: string; access_token: string; scope: string };
      t.equal(tokens.scope, 'openid profile email');
      const idToken = decodeJwt(tokens.id_token);
      t.equal(idToken.sub, userId);
      t.equal(idToken.nonce, nonce);
      t.equal(idToken.name, 'Grace Hopper');

      // SSO: the next request in this browser goes straight back with a code
      const again = new URL(authUrl);
      again.searchParams.set('state', 'second');
      await page.goto(again.href);
      t.ok(page.url().startsWith(rp.callback), 'SSO with remembered consent: straight to the client');
      t.equal(rp.hits.length, 2);
      t.equal(rp.hits[1]!.searchParams.get('state'), 'second');

      // control: the same consent page served with a CSP whose form-action lacks the client's
      // origin is blocked by Chromium, so the check above could fail
      const control = new URL(authUrl);
      control.searchParams.set('prompt', 'consent');
      control.searchParams.set('state', 'control');
      await page.goto(control.href);
      await page.waitForSelector('button[value=approve]');
      const consentUrl = page.url();
      // (route handlers do not see requests that follow a redirect: intercept the reload)
      await page.route(consentUrl, async (route) => {
        const response = await route.fetch();
        await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': "default-src 'none'; style-src 'self'; form-action 'self'" } });
      });
      await page.reload();
      await page.waitForSelector('button[value=approve]');
      const violation = page.waitForEvent('console', { predicate: (m) => /form-action/.test(m.text()), timeout: 30_000 });
      await page.click('button[value=approve]', { noWaitAfter: true });
      t.match((await violation).text(), /Content Security Policy/, 'Chromium refuses the redirect when form-action lacks the client origin');
      t.equal(rp.hits.length, 2, 'and the client was not reached');
      await page.unroute(consentUrl);
    });
  }
});

// Issue 12, end to end: a real resource server (a separate process using @latchkey/verify) against
// the real server. A valid token passes; after /revoke, logout, `sessions revoke`, a disabled user
// and a deleted client the resource server refuses the token once the list's ttl has passed; a
// tampered list, a list signed by a revoked key, a list for another `sub`, and an unreachable
// issuer past maxStaleness are refused.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { decodeJwt } from 'jose';
import { StatusList } from '@sd-jwt/jwt-status-list';
import { signJwt } from '../../src/tokens/access-token.js';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, freePort, RunningClock } from '../helpers/runtime.js';
import { cli, createClient, createUser, type TestClient } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm, tokenRequest, type TokenSet } from '../helpers/flow.js';
import { Browser } from '../helpers/http-login.js';
import { ROOT, waitFor } from '../helpers/process.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const API = 'https://api.example.com';
const TTL = 2;
const MAX_STALENESS = 3;

async function startResourceServer(issuer: string): Promise<{ url: string; proc: ChildProcess; output: () => string }> {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/helpers/resource-server.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ISSUER: issuer, AUDIENCE: API, PORT: String(port), MAX_STALENESS: String(MAX_STALENESS), JWKS_MAX_AGE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  await waitFor(async () => (out.includes('ready') ? true : undefined), 60_000);
  return { url: `http://127.0.0.1:${port}`, proc, output: () => out };
}

for (const backend of backends()) {
  t.test(`a resource server with @latchkey/verify on ${backend.name}`, async (t) => {
    const e = await createTestEnv(await backend.create(), { listen: true, clock: new RunningClock(), env: { STATUS_LIST_TTL: String(TTL) } });
    t.teardown(() => e.close());
    const issuer = e.config.issuer;
    const rs = await startResourceServer(issuer);
    t.teardown(() => {
      rs.proc.kill('SIGKILL');
    });
    const api = async (token: string) => {
      const res = await fetch(`${rs.url}/api/me`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, www: res.headers.get('www-authenticate') ?? '', body: (await res.json()) as Record<string, string> };
    };
    const control = (body: Record<string, unknown>) => fetch(`${rs.url}/__control`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', API, '--scopes', 'openid offline_access api:read']);
    const auth = (c: TestClient) => ({ clientId: c.clientId, secret: c.clientSecret });
    let n = 0;
    const newUser = async () => {
      const email = `rs${++n}@example.com`;
      await createUser(e.rt, email, 'rs password 1');
      return email;
    };
    const login = async (email: string, browser?: Browser, scope = 'openid offline_access api:read'): Promise<TokenSet> =>
      (await loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email, password: 'rs password 1', scope, browser, extra: { resource: API } })).tokens;
    // polled, not timed: the window itself is measured by `npm run bench` (bench/workloads/status-list.ts)
    const refusedWithin = async (token: string) => {
      const t0 = Date.now();
      await waitFor(async () => ((await api(token)).status === 401 ? true : undefined), 20_000, 100);
      return Date.now() - t0;
    };

    await t.test('a valid token passes; no credentials and garbage are 401 with WWW-Authenticate', async (t) => {
      const s = await login(await newUser());
      const r = await api(s.access_token);
      t.equal(r.status, 200);
      t.equal(r.body.sub, decodeJwt(s.access_token).sub);
      const none = await fetch(`${rs.url}/api/me`);
      t.equal(none.status, 401);
      t.match(none.headers.get('www-authenticate'), /^Bearer/);
      const junk = await api('not.a.token');
      t.equal(junk.status, 401);
      t.match(junk.www, /error="invalid_token"/);
    });

    const revocations: Array<[string, () => Promise<string>]> = [
      ['/revoke', async () => {
        const s = await login(await newUser());
        t.equal((await api(s.access_token)).status, 200);
        await postForm(`${issuer}/revoke`, { token: s.refresh_token! }, auth(app));
        return s.access_token;
      }],
      ['logout', async () => {
        const browser = new Browser(issuer);
        const s = await login(await newUser(), browser, 'openid api:read');
        t.equal((await api(s.access_token)).status, 200);
        await browser.get(`${issuer}/logout?id_token_hint=${encodeURIComponent(s.id_token!)}`);
        return s.access_token;
      }],
      ['sessions revoke', async () => {
        const s = await login(await newUser());
        t.equal((await api(s.access_token)).status, 200);
        await cli(e.rt, ['sessions', 'revoke', '--family', (decodeJwt(s.access_token) as { fid: string }).fid]);
        return s.access_token;
      }],
      ['user disable', async () => {
        const email = await newUser();
        const s = await login(email);
        t.equal((await api(s.access_token)).status, 200);
        await cli(e.rt, ['users', 'disable', email]);
        return s.access_token;
      }],
      ['client delete', async () => {
        const doomed = await createClient(e.rt, ['--name', 'Doomed', '--grant-types', 'client_credentials', '--scopes', 'api:read', '--audiences', API]);
        const tok = (await tokenRequest(issuer, { grant_type: 'client_credentials' }, auth(doomed))).body.access_token as string;
        t.equal((await api(tok)).status, 200);
        await cli(e.rt, ['clients', 'delete', doomed.clientId]);
        return tok;
      }],
    ];
    for (const [name, revoke] of revocations) {
      await t.test(`after ${name} the resource server refuses the token`, async (t) => {
        const token = await revoke();
        const ms = await refusedWithin(token);
        t.comment(`refused ${ms} ms after the revocation (ttl ${TTL} s)`);
        const r = await api(token);
        t.equal(r.status, 401);
        t.match(r.www, /error="invalid_token"/);
      });
    }

    await t.test('a tampered list is refused', async (t) => {
      const s = await login(await newUser());
      await control({ reset: true, mode: 'tamper' });
      t.teardown(() => control({ reset: true, mode: 'pass' }));
      const r = await api(s.access_token);
      t.equal(r.status, 401, 'no valid list, no valid token');
    });

    await t.test('a list for another sub is refused', async (t) => {
      const s = await login(await newUser());
      await control({ reset: true, mode: 'pass' });
      t.equal((await api(s.access_token)).status, 200);
      // a list signed with our own active key, all VALID, but for another list's URI
      const key = e.rt.keystore.signingKey(e.config.signingAlg);
      const iat = Math.floor(Date.now() / 1000);
      const lst = new StatusList(new Array<number>(1 << 20).fill(0), 1).compressStatusList();
      const misdirected = await signJwt(
        { iss: issuer, sub: `${issuer}/statuslists/424242`, iat, exp: iat + 60, ttl: TTL, status_list: { bits: 1, lst } },
        { alg: key.alg, kid: key.kid, typ: 'statuslist+jwt' },
        key.privateKey,
      );
      await control({ reset: true, mode: 'serve', body: misdirected });
      t.teardown(() => control({ reset: true, mode: 'pass' }));
      t.equal((await api(s.access_token)).status, 401);
    });

    await t.test('a list signed by a revoked key is refused', async (t) => {
      await control({ reset: true, mode: 'pass' });
      const before = await login(await newUser());
      t.equal((await api(before.access_token)).status, 200);
      const oldList = ((await (await fetch(`${rs.url}/__last-list`)).json()) as { body: string }).body;
      const oldKid = JSON.parse(Buffer.from(oldList.split('.')[0]!, 'base64url').toString()).kid as string;
      await cli(e.rt, ['keys', 'revoke', oldKid, '--reason', 'test']);
      await e.rt.keystore.reload();
      const after = await login(await newUser());
      t.not(JSON.parse(Buffer.from(after.access_token.split('.')[0]!, 'base64url').toString()).kid, oldKid, 'new tokens are signed by the next key');
      t.equal((await api(after.access_token)).status, 200, 'a fresh list signed by the new key passes');
      await control({ reset: true, mode: 'serve', body: oldList });
      t.teardown(() => control({ reset: true, mode: 'pass' }));
      t.equal((await api(after.access_token)).status, 401, 'the old list, signed by the revoked key, is refused');
    });

    await t.test('an unreachable issuer: accepted within maxStaleness past the ttl, then refused', async (t) => {
      await control({ reset: true, mode: 'pass' });
      const s = await login(await newUser());
      t.equal((await api(s.access_token)).status, 200);
      await control({ mode: 'down' });
      t.teardown(() => control({ reset: true, mode: 'pass' }));
      t.equal((await api(s.access_token)).status, 200, 'the last good list still answers');
      await t.resolves(waitFor(async () => ((await api(s.access_token)).status === 401 ? true : undefined), 30_000, 200), `refused once ttl + maxStaleness (${TTL + MAX_STALENESS} s) have passed`);
      const logs = ((await (await fetch(`${rs.url}/__logs`)).json()) as { logs: string[] }).logs;
      t.ok(logs.some((l) => /^(warn|error)/.test(l)), 'and it said so in its log callback');
    });
  });
}

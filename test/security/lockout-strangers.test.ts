// Issue 23, finding 5: a stranger's failures must not lock the owner out. Failures from one
// address used up a client's (or an account's) budget, and the correct secret (password) from
// another address then got 429 for the whole window. The rule now: past the budget, only the
// addresses that have themselves failed against that client or account are refused; an address
// that has not failed still gets its correct credential through (its wrong ones count as before).
// The per-address limits are unchanged. Per replica and, with REDIS_URL, shared by the replicas.
import t from 'tap';
import net from 'node:net';
import crypto from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { authorizationUrl, basic } from '../helpers/flow.js';
import { parseForm } from '../helpers/http-login.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const REDIS_URL = 'redis://127.0.0.1:6379';

const redisUp = await new Promise<boolean>((resolve) => {
  const s = net.connect(6379, '127.0.0.1');
  s.once('connect', () => (s.destroy(), resolve(true)));
  s.once('error', () => resolve(false));
});
const redisSkip = redisUp || process.env.CI_REQUIRE_ALL ? false : 'needs Redis on 127.0.0.1:6379 (apt-get install redis-server)';

// Redis outlives a test run and the in-process issuer is always http://127.0.0.1:3000: fresh
// addresses per run keep the counters of earlier runs out of this one
const net24 = `127.${crypto.randomInt(1, 255)}.${crypto.randomInt(1, 255)}`;
const ADDR = { attacker: `${net24}.5`, owner: `${net24}.6`, other: `${net24}.7`, later: `${net24}.8` };

/** The login pages walked through app.inject from one address, with a cookie jar. */
class InjectBrowser {
  private cookies = new Map<string, string>();
  constructor(
    private readonly app: FastifyInstance,
    private readonly issuer: string,
    private readonly remoteAddress: string,
  ) {}

  async request(method: 'GET' | 'POST', url: string, form?: Record<string, string>) {
    const u = new URL(url, this.issuer);
    const res = await this.app.inject({
      method,
      url: u.pathname + u.search,
      remoteAddress: this.remoteAddress,
      headers: {
        cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded', origin: this.issuer } : {}),
      },
      payload: form ? new URLSearchParams(form).toString() : undefined,
    });
    const set = res.headers['set-cookie'];
    for (const sc of set === undefined ? [] : Array.isArray(set) ? set : [set]) {
      const [pair] = sc.split(';');
      const eq = pair!.indexOf('=');
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0|expires=Thu, 01 Jan 1970/i.test(sc) || value === '') this.cookies.delete(pair!.slice(0, eq).trim());
      else this.cookies.set(pair!.slice(0, eq).trim(), value);
    }
    return res;
  }

  /** A fresh login form; then one login with this password. */
  async login(clientId: string, email: string, password: string): Promise<number> {
    let res = await this.request('GET', authorizationUrl(this.issuer, clientId, REDIRECT));
    for (let i = 0; i < 5 && res.statusCode >= 300 && res.statusCode < 400; i++) res = await this.request('GET', res.headers.location as string);
    if (res.statusCode !== 200) throw new Error(`no login page: ${res.statusCode}`);
    const { action, fields } = parseForm(res.body);
    return (await this.request('POST', action, { ...fields, username: email, password })).statusCode;
  }
}

const modes = [
  { name: 'per replica', env: {} as Record<string, string>, skip: false as string | false },
  { name: 'with Redis', env: { REDIS_URL }, skip: redisSkip },
];

for (const backend of backends()) {
  for (const mode of modes) {
    t.test(`a stranger's failures do not lock the owner out, ${mode.name} on ${backend.name}`, { skip: mode.skip }, async (t) => {
      // the defaults: 20 failures per client, 10 per account; the per-address limits far above
      const e = await createTestEnv(await backend.create(), { env: { ...mode.env, LOGIN_FAILURES_PER_IP: '50', CLIENT_AUTH_FAILURES_PER_IP: '100' } });
      t.teardown(() => e.close());
      const { issuer } = e.config;
      const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--grant-types', 'authorization_code,client_credentials', '--scopes', 'openid jobs', '--audiences', 'https://api.example.com']);

      await t.test('client secrets', async (t) => {
        const cc = async (remoteAddress: string, secret: string) => {
          const res = await e.app.inject({
            method: 'POST',
            url: '/token',
            remoteAddress,
            headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(app.clientId, secret) },
            payload: 'grant_type=client_credentials&scope=jobs',
          });
          return res;
        };
        for (let i = 0; i < 20; i++) t.equal((await cc(ADDR.attacker, 'a wrong secret')).statusCode, 401, `wrong secret ${i + 1} from the attacker`);
        t.equal((await cc(ADDR.attacker, 'a wrong secret')).statusCode, 429, 'the attacker is refused past the per-client budget');
        const refused = await cc(ADDR.attacker, app.clientSecret!);
        t.equal(refused.statusCode, 429, 'the attacker’s address stays refused, whatever it sends');
        t.ok(Number(refused.headers['retry-after']) > 0, 'with Retry-After');

        const owner = await cc(ADDR.owner, app.clientSecret!);
        t.equal(owner.statusCode, 200, 'the right secret from an address that has not failed goes through');
        t.ok(owner.json().access_token, 'and gets a token');
        t.same(
          [...new Set(await Promise.all(Array.from({ length: 10 }, async () => (await cc(ADDR.owner, app.clientSecret!)).statusCode)))],
          [200],
          'concurrent right secrets from it too',
        );

        t.equal((await cc(ADDR.other, 'a wrong secret')).statusCode, 401, 'a new address’s wrong secret is checked (and counted)');
        t.equal((await cc(ADDR.other, app.clientSecret!)).statusCode, 429, 'after which that address is refused like the attacker’s');
        t.equal((await cc(ADDR.owner, app.clientSecret!)).statusCode, 200, 'the owner still goes through');

        // the next window: everyone starts afresh
        e.clock.advance(e.config.rateLimitWindowSeconds + 1);
        if (!mode.env.REDIS_URL) t.equal((await cc(ADDR.attacker, app.clientSecret!)).statusCode, 200, 'the next window (per replica: the injected clock)');
      });

      await t.test('user passwords', async (t) => {
        const email = `owner-${crypto.randomBytes(4).toString('hex')}@example.com`;
        await createUser(e.rt, email, 'the right password');
        const attacker = new InjectBrowser(e.app, issuer, ADDR.attacker);
        for (let i = 0; i < 10; i++) t.equal(await attacker.login(app.clientId, email, 'a wrong password'), 401, `wrong password ${i + 1} from the attacker`);
        t.equal(await attacker.login(app.clientId, email, 'the right password'), 429, 'the attacker is refused past the account’s budget, even with the right password');

        const owner = new InjectBrowser(e.app, issuer, ADDR.owner);
        t.equal(await owner.login(app.clientId, email, 'the right password'), 303, 'the owner’s right password from an address that has not failed logs in');
        t.equal(await new InjectBrowser(e.app, issuer, ADDR.owner).login(app.clientId, email, 'the right password'), 303, 'and again');

        const other = new InjectBrowser(e.app, issuer, ADDR.other);
        t.equal(await other.login(app.clientId, email, 'a wrong password'), 401, 'a new address’s wrong password is checked (and counted)');
        t.equal(await other.login(app.clientId, email, 'the right password'), 429, 'after which that address is refused too');

        // every 429 of a login waited LOGIN_WAIT_MS for a slot first (the limiter cannot tell a failure from an attempt in flight)
        const failures = await e.rt.db.selectFrom('audit_events').select('id').where('type', '=', 'login.failure').execute();
        t.equal(failures.length, 11, 'only the 10 + 1 admitted wrong passwords reached the password check');

        const later = new InjectBrowser(e.app, issuer, ADDR.later);
        t.equal(await later.login(app.clientId, email, 'the right password'), 303, 'a right password from yet another address still logs in');
      });

      await t.test('past the budget, a new address gets one guess however many it sends at once', async (t) => {
        const email = `burst-${crypto.randomBytes(4).toString('hex')}@example.com`;
        await createUser(e.rt, email, 'the right password');
        const a = new InjectBrowser(e.app, issuer, `${net24}.20`);
        for (let i = 0; i < 10; i++) await a.login(app.clientId, email, 'a wrong password');
        const b = new InjectBrowser(e.app, issuer, `${net24}.21`);
        let res = await b.request('GET', authorizationUrl(issuer, app.clientId, REDIRECT));
        for (let i = 0; i < 5 && res.statusCode >= 300 && res.statusCode < 400; i++) res = await b.request('GET', res.headers.location as string);
        const { action, fields } = parseForm(res.body);
        // the first is counted before its check; the others find it in flight, wait, and are refused
        const statuses = await Promise.all(Array.from({ length: 10 }, async () => (await b.request('POST', action, { ...fields, username: email, password: 'a wrong password' })).statusCode));
        t.equal(statuses.filter((s) => s === 401).length, 1, `one checked (${statuses.join(' ')})`);
        t.equal(statuses.filter((s) => s === 429).length, 9, 'the rest refused');
      });
    });
  }
}

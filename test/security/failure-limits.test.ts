// Issue 17 item 5: failure rate limits count a login attempt before the password is checked, so N
// concurrent attempts can never get more than the limit checked (40 concurrent wrong passwords
// against a limit of 10: at most 10 checked, the rest 429), with or without Redis; client
// authentication is refused once its failures reach the limit and counted when it fails, so a busy
// client's concurrent requests are never refused; IPv6 clients are
// counted by /64; junk keys cannot evict a victim's counter, and the counters' memory is bounded.
import t from 'tap';
import net from 'node:net';
import crypto from 'node:crypto';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { authorizationUrl, basic } from '../helpers/flow.js';
import { Browser, parseForm } from '../helpers/http-login.js';
import { MemoryCounters, addressKey } from '../../src/http/plugins/failure-limits.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';
const REDIS_URL = 'redis://127.0.0.1:6379';

const redisUp = await new Promise<boolean>((resolve) => {
  const s = net.connect(6379, '127.0.0.1');
  s.once('connect', () => (s.destroy(), resolve(true)));
  s.once('error', () => resolve(false));
});
const redisSkip = redisUp || process.env.CI_REQUIRE_ALL ? false : 'needs Redis on 127.0.0.1:6379 (apt-get install redis-server)';

t.test('addresses: IPv6 by /64, IPv4-mapped as IPv4', async (t) => {
  t.equal(addressKey('192.0.2.7'), '192.0.2.7');
  t.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  t.equal(addressKey('::ffff:c000:207'), '192.0.2.7');
  t.equal(addressKey('2001:db8:a:b::1'), '2001:db8:a:b::/64');
  t.equal(addressKey('2001:db8:a:b:ffff:ffff:ffff:ffff'), '2001:db8:a:b::/64');
  t.equal(addressKey('2001:0db8:000a:000b:1:2:3:4'), '2001:db8:a:b::/64');
  t.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  t.equal(addressKey('::1'), '0:0:0:0::/64');
  t.equal(addressKey('64:ff9b::192.0.2.7'), '64:ff9b:0:0::/64');
  t.not(addressKey('2001:db8:a:b::1'), addressKey('2001:db8:a:c::1'));
});

t.test('memory counters: junk keys never evict a live counter; memory stays bounded', async (t) => {
  const window = 60_000;
  let now = 1_000_000;
  const c = new MemoryCounters(window, 100);
  const take = (key: string, max = 10) => c.takeNow([{ key, max }], now);
  for (let i = 0; i < 9; i++) t.ok(take('victim').ok);
  for (let i = 0; i < 5000; i++) take(`junk-${i}`);
  t.ok(c.size <= 100, `at most 100 exact counters (${c.size})`);
  t.ok(take('victim').ok, 'the victim’s 10th attempt');
  const refused = take('victim');
  t.equal(refused.ok, false, 'the 11th is refused: the counter survived the junk');
  t.ok(!refused.ok && refused.retryAfterMs > 0 && refused.retryAfterMs <= window);
  // a newcomer while the table is full is counted in the sketch: limited all the same
  let admitted = 0;
  for (let i = 0; i < 20; i++) if (take('newcomer').ok) admitted++;
  t.ok(admitted <= 10, `a newcomer past the table is limited too (${admitted} admitted)`);
  // an attempt uncounted (a success) gives its place back
  const ok = take('honest', 1);
  t.ok(ok.ok);
  if (ok.ok) await ok.release();
  t.ok(take('honest', 1).ok, 'a success does not use up the budget');
  // the next window: expired counters are reclaimed, the victim starts afresh
  now += window + 1;
  t.ok(take('victim').ok, 'a new window');
  t.ok(c.size <= 2, `expired counters reclaimed (${c.size})`);
});

const modes = [
  { name: 'per replica', env: {} as Record<string, string>, skip: false as string | false },
  { name: 'with Redis', env: { REDIS_URL }, skip: redisSkip },
];

for (const backend of backends()) {
  for (const mode of modes) {
    t.test(`failure limits ${mode.name} on ${backend.name}`, { skip: mode.skip }, async (t) => {
      const e = await createTestEnv(await backend.create(), {
        listen: true,
        env: { ...mode.env, LOGIN_FAILURES_PER_ACCOUNT: '10', LOGIN_FAILURES_PER_IP: '1000', CLIENT_AUTH_FAILURES_PER_CLIENT: '10', CLIENT_AUTH_FAILURES_PER_IP: '1000' },
      });
      t.teardown(() => e.close());
      const issuer = e.config.issuer;
      const email = `eve-${crypto.randomBytes(4).toString('hex')}@example.com`;
      await createUser(e.rt, email, 'the right password');
      const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--grant-types', 'authorization_code,client_credentials', '--scopes', 'openid jobs', '--audiences', 'https://api.example.com']);

      await t.test('30 concurrent right passwords of one account (limit 10): none refused, they wait for a slot', async (t) => {
        const steps = await Promise.all(
          Array.from({ length: 30 }, async () => {
            const browser = new Browser(issuer);
            const page = await browser.follow(await browser.get(authorizationUrl(issuer, app.clientId, REDIRECT)));
            const { action, fields } = parseForm(page.body);
            return browser.post(action, { ...fields, username: email, password: 'the right password' });
          }),
        );
        t.same([...new Set(steps.map((s) => s.status))], [303], `all 30 logged in (${steps.map((s) => s.status).join(' ')})`);
      });

      await t.test('40 concurrent wrong passwords against a limit of 10', async (t) => {
        const browser = new Browser(issuer);
        const page = await browser.follow(await browser.get(authorizationUrl(issuer, app.clientId, REDIRECT)));
        const { action, fields } = parseForm(page.body);
        const steps = await Promise.all(Array.from({ length: 40 }, () => browser.post(action, { ...fields, username: email, password: 'a wrong password' })));
        const checked = steps.filter((s) => s.status === 401).length;
        const limited = steps.filter((s) => s.status === 429).length;
        t.equal(checked + limited, 40, `every attempt is 401 or 429 (${steps.map((s) => s.status).join(' ')})`);
        t.ok(checked <= 10, `at most 10 checked (${checked})`);
        t.ok(checked >= 1, 'some were checked');
        const audited = await e.rt.db.selectFrom('audit_events').select('id').where('type', '=', 'login.failure').execute();
        t.equal(audited.length, checked, 'only the checked attempts reached the password check');
        t.ok(steps.filter((s) => s.status === 429).every((s) => Number(s.res.headers.get('retry-after')) > 0), 'Retry-After on every 429');
      });

      await t.test('client authentication: honest concurrency is never refused; failures are counted, then everything waits', async (t) => {
        const cc = (secret: string) =>
          fetch(`${issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(app.clientId, secret) }, body: 'grant_type=client_credentials&scope=jobs' });
        // a busy service: 60 token requests in flight at once, 6 times the per-client limit
        const honest = await Promise.all(Array.from({ length: 60 }, async () => (await cc(app.clientSecret!)).status));
        t.same([...new Set(honest)], [200], `60 concurrent right secrets all succeed: ${honest.join(' ')}`);
        for (let i = 0; i < 25; i++) t.equal((await cc(app.clientSecret!)).status, 200, `success ${i + 1}`);
        const statuses = await Promise.all(Array.from({ length: 40 }, async () => (await cc('a wrong secret')).status));
        const checked = statuses.filter((s) => s === 401).length;
        t.equal(checked + statuses.filter((s) => s === 429).length, 40, statuses.join(' '));
        t.ok(checked >= 10, `at least the limit was checked and counted (${checked})`);
        const audited = await e.rt.db.selectFrom('audit_events').select('id').where('type', '=', 'client_auth.failure').execute();
        t.equal(audited.length, checked, 'every checked failure was audited');
        t.equal((await cc(app.clientSecret!)).status, 429, 'then even the right secret waits');
        const late = await Promise.all(Array.from({ length: 10 }, async () => (await cc('a wrong secret')).status));
        t.same([...new Set(late)], [429], 'and no further failure is checked in this window');
      });
    });

    t.test(`IPv6 clients are counted by /64 ${mode.name} on ${backend.name}`, { skip: mode.skip }, async (t) => {
      const e = await createTestEnv(await backend.create(), { env: { ...mode.env, CLIENT_AUTH_FAILURES_PER_CLIENT: '1000', CLIENT_AUTH_FAILURES_PER_IP: '3' } });
      t.teardown(() => e.close());
      // a fresh prefix per run: Redis outlives the test
      const p = crypto.randomBytes(4).toString('hex');
      const prefix = `2001:db8:${p.slice(0, 4)}:${p.slice(4)}`;
      const attempt = async (remoteAddress: string) =>
        (
          await e.app.inject({
            method: 'POST',
            url: '/token',
            remoteAddress,
            headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(`nobody-${crypto.randomUUID()}`, 'x') },
            payload: 'grant_type=client_credentials',
          })
        ).statusCode;
      t.equal(await attempt(`${prefix}::1`), 401);
      t.equal(await attempt(`${prefix}:1::2`), 401);
      t.equal(await attempt(`${prefix}:ffff:ffff:ffff:ffff`), 401);
      t.equal(await attempt(`${prefix}::99`), 429, 'another address of the same /64 is limited');
      t.equal(await attempt(`${prefix.slice(0, -1)}${(parseInt(prefix.slice(-1), 16) ^ 1).toString(16)}::1`), 401, 'the next /64 is not');
      const v4 = `198.51.${crypto.randomInt(256)}.${crypto.randomInt(256)}`;
      for (let i = 0; i < 3; i++) t.equal(await attempt(v4), 401);
      t.equal(await attempt(`::ffff:${v4}`), 429, 'IPv4-mapped IPv6 is the same IPv4 client');
    });
  }
}

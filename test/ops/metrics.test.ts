// Prometheus metrics: the separate listener, the metric families and their labels, and what the
// protocol's events do to them, on PGlite and Postgres. Counters are per process, so every check
// compares two scrapes.
import t, { type Test } from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { authorizationUrl, loginAndRedeem, postForm, tokenRequest } from '../helpers/flow.js';
import { Browser, authorizeWithLogin } from '../helpers/http-login.js';
import { Gate } from '../../src/accounts/passwords.js';
import { loadConfig } from '../../src/core/config.js';
import { metrics } from '../../src/core/metrics.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

type Samples = Map<string, number>;

/** Parses the text exposition into `name{a="b",…}` → value (labels as printed). */
function parse(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The value of the sample of `name` whose labels include all of `labels` (0 when absent). */
function value(s: Samples, name: string, labels: Record<string, string> = {}): number {
  for (const [key, v] of s) {
    const brace = key.indexOf('{');
    const n = brace < 0 ? key : key.slice(0, brace);
    if (n !== name) continue;
    const ls = brace < 0 ? '' : key.slice(brace);
    if (Object.entries(labels).every(([k, val]) => ls.includes(`${k}="${val}"`))) return v;
  }
  return 0;
}

async function scrape(e: TestEnv): Promise<{ text: string; samples: Samples; res: Response }> {
  const a = e.app.metricsAddress();
  if (!a) throw new Error('metrics listener not started');
  const res = await fetch(`http://${a.host}:${a.port}/metrics`);
  const text = await res.text();
  return { text, samples: parse(text), res };
}

t.test('METRICS_PORT is off by default, METRICS_HOST is loopback by default', async (t) => {
  const c = loadConfig({});
  t.equal(c.metricsPort, undefined);
  t.equal(c.metricsHost, '127.0.0.1');
  t.equal(loadConfig({ METRICS_PORT: '9464' }).metricsPort, 9464);
  t.equal(loadConfig({ METRICS_PORT: 'off' }).metricsPort, undefined);
  t.throws(() => loadConfig({ METRICS_PORT: 'abc' }), /METRICS_PORT/);
});

t.test('the argon2 gate reports its queue and its rejections', async (t) => {
  const gate = new Gate(1, 1);
  const before = parse(await metrics.render());
  let release!: () => void;
  const blocker = new Promise<void>((r) => (release = r));
  const first = gate.run(() => blocker);
  const second = gate.run(async () => undefined);
  const during = parse(await metrics.render());
  t.equal(value(during, 'latchkey_password_hash_running') - value(before, 'latchkey_password_hash_running'), 1, 'one running');
  t.equal(value(during, 'latchkey_password_hash_queue_depth') - value(before, 'latchkey_password_hash_queue_depth'), 1, 'one waiting');
  await t.rejects(gate.run(async () => undefined), { message: /busy/ }, 'past the queue: refused');
  release();
  await first;
  await second;
  const after = parse(await metrics.render());
  t.equal(value(after, 'latchkey_password_hash_rejections_total') - value(before, 'latchkey_password_hash_rejections_total'), 1, 'one rejection counted');
  t.equal(value(after, 'latchkey_password_hash_queue_depth'), value(before, 'latchkey_password_hash_queue_depth'), 'queue drained');
  t.equal(value(after, 'latchkey_password_hash_running'), value(before, 'latchkey_password_hash_running'), 'nothing running');
});

t.test('no listener and no /metrics when METRICS_PORT is unset', async (t) => {
  const e = await createTestEnv('memory:', { listen: true });
  t.teardown(() => e.close());
  t.equal(e.app.metricsAddress(), undefined);
  t.equal((await fetch(`${e.config.issuer}/metrics`)).status, 404, 'never on the public port');
});

for (const backend of backends()) {
  t.test(`metrics on ${backend.name}`, async (t: Test) => {
    const e = await createTestEnv(await backend.create(), { listen: true, env: { METRICS_PORT: '0', LOGIN_FAILURES_PER_ACCOUNT: '1' } });
    t.teardown(() => e.close());
    await createUser(e.rt, 'mia@example.com', 'mia password 1');
    await createUser(e.rt, 'max@example.com', 'max password 1');
    const app = await createClient(e.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--audiences', 'https://api.example.com', '--scopes', 'openid offline_access api:read']);
    const svc = await createClient(e.rt, ['--name', 'Svc', '--grant-types', 'client_credentials', '--scopes', 'api:read', '--audiences', 'https://api.example.com']);

    const addr = e.app.metricsAddress()!;
    t.equal(addr.host, '127.0.0.1', 'loopback only');
    t.not(addr.port, e.config.port, 'a port of its own');
    t.equal((await fetch(`${e.config.issuer}/metrics`)).status, 404, 'not on the public port');
    t.equal((await fetch(`http://${addr.host}:${addr.port}/other`)).status, 404, 'the listener serves /metrics only');

    const before = (await scrape(e)).samples;
    const issued: string[] = [];
    // a code flow (login success), a refresh, a reuse, a client_credentials token, a /revoke
    const { tokens } = await loginAndRedeem({ issuer: e.config.issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'mia@example.com', password: 'mia password 1', scope: 'openid offline_access api:read' });
    issued.push(tokens.access_token, tokens.refresh_token!, tokens.id_token!);
    const rotated = await tokenRequest(e.config.issuer, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }, { clientId: app.clientId, secret: app.clientSecret });
    t.equal(rotated.status, 200);
    issued.push(rotated.body.access_token as string, rotated.body.refresh_token as string);
    const replay = await tokenRequest(e.config.issuer, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }, { clientId: app.clientId, secret: app.clientSecret });
    t.equal(replay.status, 400, 'a consumed refresh token presented again');
    const cc = await tokenRequest(e.config.issuer, { grant_type: 'client_credentials', scope: 'api:read' }, { clientId: svc.clientId, secret: svc.clientSecret });
    t.equal(cc.status, 200);
    issued.push(cc.body.access_token as string);
    const revoked = await postForm(`${e.config.issuer}/revoke`, { token: cc.body.access_token as string }, { clientId: svc.clientId, secret: svc.clientSecret });
    t.equal(revoked.status, 200);
    // a failed login, then a throttled one (LOGIN_FAILURES_PER_ACCOUNT=1)
    const bad = await authorizeWithLogin(new Browser(e.config.issuer), authorizationUrl(e.config.issuer, app.clientId, REDIRECT), 'max@example.com', 'wrong password');
    t.equal(bad.status, 401);
    const throttled = await authorizeWithLogin(new Browser(e.config.issuer), authorizationUrl(e.config.issuer, app.clientId, REDIRECT), 'max@example.com', 'wrong password');
    t.equal(throttled.status, 429);
    await fetch(`${e.config.issuer}/no/such/path/${'x'.repeat(20)}`);
    const jwks = await fetch(`${e.config.issuer}/.well-known/jwks.json`);
    t.equal(jwks.status, 200);

    const { text, samples: after, res } = await scrape(e);
    t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/, 'Prometheus text format');
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);

    t.equal(delta('latchkey_tokens_issued_total', { grant_type: 'authorization_code' }), 1, 'tokens issued: code');
    t.equal(delta('latchkey_tokens_issued_total', { grant_type: 'refresh_token' }), 1, 'tokens issued: refresh');
    t.equal(delta('latchkey_tokens_issued_total', { grant_type: 'client_credentials' }), 1, 'tokens issued: client_credentials');
    t.equal(delta('latchkey_refresh_reuse_detected_total'), 1, 'reuse detected');
    t.equal(delta('latchkey_revocations_total', { cause: 'refresh_reuse' }), 1, 'revocation by reuse');
    t.equal(delta('latchkey_revocations_total', { cause: 'access_token_revoked' }), 1, 'revocation of an access token at /revoke');
    t.equal(delta('latchkey_logins_total', { result: 'success' }), 1, 'login success');
    t.equal(delta('latchkey_logins_total', { result: 'failure' }), 1, 'login failure');
    t.equal(delta('latchkey_logins_total', { result: 'throttled' }), 1, 'login throttled');

    t.equal(delta('latchkey_http_requests_total', { route: '/token', method: 'POST', status_class: '2xx' }), 3, 'requests by route and status class');
    t.equal(delta('latchkey_http_requests_total', { route: '/token', method: 'POST', status_class: '4xx' }), 1, 'the replay is a 4xx');
    t.equal(delta('latchkey_http_request_duration_seconds_count', { route: '/token', method: 'POST', status_class: '2xx' }), 3, 'latency histogram');
    t.ok(value(after, 'latchkey_http_request_duration_seconds_bucket', { route: '/token', method: 'POST', status_class: '2xx', le: '+Inf' }) >= 3, 'buckets');
    t.equal(delta('latchkey_http_requests_total', { route: '/interaction/:id/login', method: 'POST', status_class: '4xx' }), 2, 'route patterns, not raw URLs');
    t.ok(delta('latchkey_http_requests_total', { route: '(unmatched)', status_class: '4xx' }) >= 1, 'an unknown path is one label value');
    t.ok(delta('latchkey_http_requests_total', { route: '/.well-known/jwks.json', method: 'GET', status_class: '2xx' }) >= 1, 'JWKS counted (also from its snapshot)');
    t.notMatch(text, /no\/such\/path/, 'no raw URL in any label');
    for (const secret of [...issued, app.clientSecret!, svc.clientSecret!, 'mia password 1', 'wrong password']) t.notOk(text.includes(secret), 'no token, secret or password in the exposition');
    const labelNames = new Set([...text.matchAll(/[{,]([a-z_]+)="/g)].map((m) => m[1]));
    t.same([...labelNames].filter((n) => !['route', 'method', 'status_class', 'grant_type', 'cause', 'result', 'alg', 'state', 'le', 'quantile', 'version', 'major', 'minor', 'patch', 'type', 'kind', 'space'].includes(n!)), [], 'only bounded label names');

    t.equal(value(after, 'latchkey_listen_connection_up'), 1, 'LISTEN connection up');
    t.equal(value(after, 'latchkey_denylist_view_stale'), 0, 'denylist view current');
    t.ok(value(after, 'latchkey_denylist_view_entries') >= 2, 'denylist view holds the reused family and the revoked token');
    t.ok(after.has('latchkey_process_cpu_user_seconds_total'), 'process metrics');
    t.ok(after.has('latchkey_nodejs_eventloop_lag_seconds'), 'event loop metrics');
    if (backend.name === 'postgres') {
      t.ok(after.has('latchkey_pg_pool_connections{state="in_use"}') && after.has('latchkey_pg_pool_connections{state="idle"}'), 'pool in use / idle');
      t.ok(value(after, 'latchkey_pg_pool_connections', { state: 'idle' }) >= 1, 'idle connections after the requests');
      t.ok(after.has('latchkey_pg_pool_waiting_requests'), 'pool waiting');
    } else {
      t.notOk(after.has('latchkey_pg_pool_connections{state="in_use"}'), 'no pool on the embedded database');
    }

    // keys: ages and the rotation schedule follow the injected clock
    const age = value(after, 'latchkey_signing_key_age_seconds', { alg: 'ES256', state: 'active' });
    const next = value(after, 'latchkey_signing_key_next_rotation_seconds', { alg: 'ES256' });
    t.ok(after.has('latchkey_signing_key_age_seconds{alg="ES256",state="next"}'), 'next key age');
    t.ok(next > 0 && next <= e.config.keyRotationDays * 86400, 'rotation within KEY_ROTATION_DAYS');
    t.equal(Math.round(age + next), e.config.keyRotationDays * 86400, 'age of the active key + time to rotation = KEY_ROTATION_DAYS');
    e.clock.advance(3600);
    const later = (await scrape(e)).samples;
    t.equal(Math.round(value(later, 'latchkey_signing_key_age_seconds', { alg: 'ES256', state: 'active' }) - age), 3600, 'the active key aged an hour');
    t.equal(Math.round(next - value(later, 'latchkey_signing_key_next_rotation_seconds', { alg: 'ES256' })), 3600, 'rotation an hour closer');
  });
}

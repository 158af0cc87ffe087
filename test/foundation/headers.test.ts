// Security headers (helmet, src/http/plugins/security-headers.ts): the JSON endpoints carry what an API needs (nosniff, no
// framing, a CSP that allows nothing, no referrer); the HTML pages keep the browser-page set.
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

for (const backend of backends()) {
  t.test(`security headers (${backend.name})`, async (t) => {
    const e = await createTestEnv(await backend.create());
    t.teardown(() => e.close());
    const api = [
      { method: 'GET' as const, url: '/.well-known/openid-configuration' },
      { method: 'GET' as const, url: '/.well-known/jwks.json' },
      { method: 'GET' as const, url: '/readyz' },
      { method: 'POST' as const, url: '/token', payload: 'grant_type=client_credentials', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      { method: 'POST' as const, url: '/introspect', payload: 'token=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      { method: 'POST' as const, url: '/revoke', payload: 'token=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      { method: 'GET' as const, url: '/userinfo' },
      { method: 'GET' as const, url: '/admin/keys' },
    ];
    for (const r of api) {
      const res = await e.app.inject(r);
      const h = res.headers;
      const what = `${r.method} ${r.url} (${res.statusCode})`;
      t.equal(h['x-content-type-options'], 'nosniff', `${what}: nosniff`);
      t.equal(h['x-frame-options'], 'DENY', `${what}: never framed`);
      t.equal(h['content-security-policy'], "default-src 'none';frame-ancestors 'none'", `${what}: a CSP that allows nothing`);
      t.equal(h['referrer-policy'], 'no-referrer', `${what}: no referrer`);
      t.notOk(h['cross-origin-opener-policy'], `${what}: no browser-page headers`);
      t.notOk(h['x-xss-protection'], `${what}: no X-XSS-Protection`);
    }
    const page = await e.app.inject({ method: 'GET', url: '/authorize?client_id=nobody&response_type=code' });
    t.equal(page.statusCode, 400, 'an /authorize error page');
    t.match(page.headers['content-type'], /text\/html/);
    t.equal(page.headers['x-frame-options'], 'DENY', 'the HTML page is never framed either');
    t.equal(page.headers['cross-origin-opener-policy'], 'same-origin');
    t.equal(page.headers['referrer-policy'], 'same-origin');
    t.equal(page.headers['x-content-type-options'], 'nosniff');
  });
}

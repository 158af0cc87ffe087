// No secret, password, token or cookie reaches a log line: the built server's output is captured
// while requests carry unique markers in Authorization, cookies, query strings and bodies, and
// while `latchkey` commands carrying a password and printing a client secret run through it.
import crypto from 'node:crypto';
import path from 'node:path';
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { runCli, startServer } from '../helpers/process.js';
import { freePort, tempDir, TEST_KEK } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

for (const backend of backends()) {
  t.test(`captured logs hold no secret (${backend.name})`, async (t) => {
    const markers: string[] = [];
    const mark = (label: string): string => {
      const m = `${label}${crypto.randomBytes(9).toString('hex')}`;
      markers.push(m);
      return m;
    };
    const cwd = tempDir('latchkey-logs-');
    // on PGlite, an on-disk data directory so that commands go through the server's socket
    const db: Record<string, string> =
      backend.name === 'postgres' ? { DATABASE_URL: await backend.create(), LATCHKEY_KEK: TEST_KEK } : { DATA_DIR: path.join(cwd, 'data') };
    const port = await freePort();
    const server = await startServer({ PORT: String(port), CWD: cwd, LOG_LEVEL: 'info', ...db });
    t.teardown(() => server.stop('SIGKILL'));
    const base = server.url;

    const query = () =>
      new URLSearchParams({
        code: mark('code'),
        state: mark('state'),
        id_token_hint: mark('idth'),
        login_hint: mark('lh'),
        password: mark('pw'),
        client_secret: mark('cs'),
        refresh_token: mark('rt'),
        access_token: mark('at'),
        token: mark('tok'),
        code_verifier: mark('cv'),
        assertion: mark('as'),
      }).toString();
    const headers = () => ({
      authorization: `Bearer ${mark('bearer')}`,
      cookie: `latchkey_session=${mark('cookie')}; other=${mark('cookie2')}`,
      'proxy-authorization': `Basic ${Buffer.from(`u:${mark('proxypw')}`).toString('base64')}`,
    });

    // the fixed routes, and every endpoint the discovery document advertises (token, userinfo, …)
    const meta = (await (await fetch(`${base}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    const advertised = Object.entries(meta)
      .filter(([k, v]) => (k.endsWith('_endpoint') || k === 'jwks_uri') && typeof v === 'string')
      .map(([, v]) => new URL(v as string).pathname);
    const targets = [...new Set(['/.well-known/openid-configuration', '/.well-known/jwks.json', '/healthz', '/readyz', '/no-such-route', ...advertised])];
    for (const p of targets) {
      await (await fetch(`${base}${p}?${query()}`, { headers: headers() })).arrayBuffer();
      // the same with a Basic client authentication and a repeated parameter
      await (
        await fetch(`${base}${p}?code=${mark('code')}&code=${mark('code')}`, {
          headers: { authorization: `Basic ${Buffer.from(`client:${mark('basic')}`).toString('base64')}` },
        })
      ).arrayBuffer();
      // bodies: a form, JSON, invalid JSON (whose parse error would quote the body), oversized
      const form = new URLSearchParams({
        grant_type: 'authorization_code',
        password: mark('formpw'),
        client_id: 'logs-client',
        client_secret: mark('formcs'),
        code: mark('formcode'),
        code_verifier: mark('formcv'),
        redirect_uri: 'https://app.example.com/cb',
        refresh_token: mark('formrt'),
        token: mark('formtok'),
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: mark('formca'),
        id_token_hint: mark('formidth'),
        login_hint: mark('formlh'),
        state: mark('formstate'),
      });
      await (await fetch(`${base}${p}?${query()}`, { method: 'POST', headers: { ...headers(), 'content-type': 'application/x-www-form-urlencoded' }, body: form })).arrayBuffer();
      await (await fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: mark('jsonpw'), token: mark('jsontok') }) })).arrayBuffer();
      await (await fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"password":"${mark('badjson')}"` })).arrayBuffer();
      await (await fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `password=${mark('big')}&pad=${'x'.repeat(200 * 1024)}` })).arrayBuffer();
      // a malformed query string and a malformed path that still carry secrets
      await (await fetch(`${base}${p}?code=${mark('badpct')}%zz&state=%&login_hint=${mark('lh')}`)).arrayBuffer();
      await (await fetch(`${base}${p}%zz?code=${mark('badpath')}`)).arrayBuffer();
    }

    const cli = (args: string[], stdin?: string) => runCli(args, { CWD: cwd, ...db }, stdin);
    const password = mark('clipw');
    const user = await cli(['users', 'create', '--email', 'logs@example.com', '--password-stdin', '--json'], `${password}\n`);
    t.equal(user.code, 0, `users create ${user.stderr}`);
    const dup = await cli(['users', 'create', '--email', 'LOGS@example.com', '--password-stdin', '--json'], `${mark('clipw')}\n`);
    t.not(dup.code, 0, 'a failing command too');
    const client = await cli(['clients', 'create', '--name', 'Logs', '--redirect-uri', 'https://app.example.com/cb', '--json']);
    t.equal(client.code, 0, `clients create ${client.stderr}`);
    const secret = (JSON.parse(client.stdout) as { client_secret: string }).client_secret;
    t.ok(secret, 'a client secret was printed');
    markers.push(secret);

    t.equal(await server.stop('SIGTERM'), 0, 'the server stops cleanly');
    const logs = server.output();
    const lines = logs.split('\n').filter(Boolean);
    const requestLines = lines.filter((l) => l.includes('"req":{'));
    t.ok(requestLines.length >= targets.length * 4, `the server logged its requests (${requestLines.length} request lines for ${targets.length} routes)`);
    t.match(logs, /"url":"\/\.well-known\/openid-configuration\?code=\[redacted\]&state=\[redacted\]/, 'query parameters are logged by name only');
    t.match(logs, /"statusCode":404/, 'answers are logged');
    const leaked = markers.filter((m) => logs.includes(m));
    t.same(leaked, [], `none of the ${markers.length} markers reaches the logs`);
    for (const word of ['Bearer ', 'Basic ', 'latchkey_session=']) t.notOk(logs.includes(word), `no "${word}" in the logs`);
  });
}

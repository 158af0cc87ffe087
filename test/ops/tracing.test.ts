// OpenTelemetry: the built server, started with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP
// receiver in this process, exports one trace for a /token request that carried a `traceparent`:
// the request span and (on Postgres) its database child spans, with service.name latchkey and no
// secret in any attribute. Without the variable, nothing is exported.
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { runCli, startServer, waitFor } from '../helpers/process.js';
import { freePort, tempDir, TEST_KEK } from '../helpers/runtime.js';
import { pkce, tokenRequest } from '../helpers/flow.js';
import { Browser, authorizeWithLogin } from '../helpers/http-login.js';

t.teardown(dropCreatedDatabases);

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  arrayValue?: { values: OtlpValue[] };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: OtlpValue }>;
}
interface Received {
  raw: string[];
  spans: Array<OtlpSpan & { service?: string }>;
}

/** An OTLP/HTTP (JSON) trace receiver. */
async function receiver(t: Test): Promise<{ url: string; got: Received }> {
  const got: Received = { raw: [], spans: [] };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces') {
        got.raw.push(body);
        const doc = JSON.parse(body) as { resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
        for (const rs of doc.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
          for (const ss of rs.scopeSpans) for (const s of ss.spans) got.spans.push({ ...s, service });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

const attr = (s: OtlpSpan, key: string): string | undefined => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? String(v.intValue) : undefined);
};

const REDIRECT = 'http://127.0.0.1:9999/cb';

for (const backend of backends()) {
  t.test(`a code flow is traced (${backend.name})`, async (t) => {
    const { url: otlp, got } = await receiver(t);
    const cwd = tempDir('latchkey-otel-');
    const dbPassword = `dbpw${crypto.randomBytes(8).toString('hex')}`;
    let db: Record<string, string>;
    if (backend.name === 'postgres') {
      // this machine's Postgres trusts local connections: the password is accepted and must never show
      const u = new URL(await backend.create());
      u.password = dbPassword;
      db = { DATABASE_URL: u.href, LATCHKEY_KEK: TEST_KEK };
    } else {
      db = { DATA_DIR: path.join(cwd, 'data') };
    }
    const port = await freePort();
    const server = await startServer({
      PORT: String(port),
      ISSUER: `http://127.0.0.1:${port}`,
      CWD: cwd,
      LOG_LEVEL: 'warn',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      ...db,
    });
    t.teardown(() => server.stop('SIGKILL'));
    const base = server.url;

    const cli = (args: string[], stdin?: string) => runCli([...args, '--json'], { CWD: cwd, ...db }, stdin);
    const password = `pw${crypto.randomBytes(8).toString('hex')}`;
    t.equal((await cli(['users', 'create', '--email', 'otel@example.com', '--password-stdin'], `${password}\n`)).code, 0);
    const created = await cli(['clients', 'create', '--name', 'Traced', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid offline_access']);
    t.equal(created.code, 0, created.stderr);
    const client = JSON.parse(created.stdout) as { client_id: string; client_secret: string };

    const { verifier, challenge } = pkce();
    const authz = new URL(`${base}/authorize`);
    for (const [k, v] of Object.entries({ response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT, scope: 'openid offline_access', state: 'st', code_challenge: challenge, code_challenge_method: 'S256' })) authz.searchParams.set(k, v);
    const step = await authorizeWithLogin(new Browser(base), authz.href, 'otel@example.com', password);
    t.match(step.location, REDIRECT, `back at the client: ${step.status} ${step.body.slice(0, 200)}`);
    const code = new URL(step.location!).searchParams.get('code')!;
    t.ok(code, 'a code');

    const traceId = crypto.randomBytes(16).toString('hex');
    const parentId = crypto.randomBytes(8).toString('hex');
    const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
    const res = await fetch(`${base}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
        traceparent: `00-${traceId}-${parentId}-01`,
      },
      body: form.toString(),
    });
    const tokens = (await res.json()) as { access_token: string; refresh_token: string; id_token: string };
    t.equal(res.status, 200, 'the code is redeemed');

    // the request span of /token, in the caller's trace, child of the caller's span
    const tokenSpan = await waitFor(async () => got.spans.find((s) => s.traceId === traceId && attr(s, 'http.route') === '/token' && s.parentSpanId === parentId), 60000);
    t.equal(tokenSpan.service, 'latchkey', 'service.name=latchkey');
    t.equal(tokenSpan.kind, 2, 'a SERVER span');
    t.equal(attr(tokenSpan, 'http.request.method'), 'POST');
    const inTrace = () => got.spans.filter((s) => s.traceId === traceId);
    if (backend.name === 'postgres') {
      const dbSpans = await waitFor(async () => {
        const d = inTrace().filter((s) => attr(s, 'db.system') === 'postgresql' || attr(s, 'db.system.name') === 'postgresql');
        return d.length > 0 ? d : undefined;
      }, 60000);
      const byId = new Map(inTrace().map((s) => [s.spanId, s]));
      const descends = (s: OtlpSpan): boolean => {
        for (let p = s.parentSpanId; p; p = byId.get(p)?.parentSpanId) if (p === tokenSpan.spanId) return true;
        return false;
      };
      t.ok(dbSpans.every(descends), `${dbSpans.length} Postgres spans, all below the /token span`);
      t.ok(dbSpans.some((s) => /INSERT|UPDATE|SELECT/i.test(attr(s, 'db.statement') ?? attr(s, 'db.query.text') ?? s.name)), 'they name their statements');
    } else {
      t.ok(inTrace().length >= 1, 'PGlite runs in process: the /token span has no database spans');
    }
    t.same([...new Set(inTrace().map((s) => s.traceId))], [traceId], 'one trace');

    await waitFor(async () => (got.spans.some((s) => attr(s, 'http.route') === '/interaction/:id/login') ? true : undefined), 60000);
    const everything = got.raw.join('\n');
    const secrets = { code, verifier, password, clientSecret: client.client_secret, access: tokens.access_token, refresh: tokens.refresh_token, id: tokens.id_token, dbPassword };
    for (const [name, value] of Object.entries(secrets)) t.notOk(everything.includes(value), `no ${name} in any exported span`);
    t.notOk(everything.includes(authz.searchParams.get('code_challenge')!), 'query values are not exported');
    t.equal(await server.stop('SIGTERM'), 0, 'the server stops cleanly (and flushes its spans)');
  });
}

t.test('off unless OTEL_EXPORTER_OTLP_ENDPOINT is set', async (t) => {
  const { tracingEnabled } = await import('../../src/tracing.js');
  t.equal(tracingEnabled({}), false);
  t.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }), false);
  t.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  t.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), true);
  t.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }), false);
});

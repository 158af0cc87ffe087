// SIGTERM: the server stops accepting, lets the requests in flight finish with their normal answer,
// closes the pool and exits 0. Each request is a POST whose body is sent in two halves, the signal
// arriving in between.
import http from 'node:http';
import crypto from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { startServer, waitFor } from '../helpers/process.js';
import { freePort, tempDir, TEST_KEK } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

interface Answer {
  status: number;
  json: Record<string, unknown>;
}

/**
 * Starts a POST with `Expect: 100-continue`: the server answers "100 Continue" as it takes the
 * request in hand, and only then is the first half of the body sent. `sent` resolves at that point;
 * `finish()` sends the rest.
 */
function postInTwoHalves(port: number, path: string, contentType: string, body: string): { sent: Promise<void>; finish(): void; answer: Promise<Answer> } {
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path,
    agent: false,
    headers: { 'content-type': contentType, 'content-length': Buffer.byteLength(body), expect: '100-continue' },
  });
  const half = Math.floor(body.length / 2);
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
  });
  const sent = new Promise<void>((resolve, reject) => {
    req.on('error', reject);
    req.on('continue', () => {
      req.write(body.slice(0, half), () => resolve());
    });
  });
  req.flushHeaders();
  return { sent, finish: () => req.end(body.slice(half)), answer };
}

async function post(port: number, path: string, contentType: string, body: string): Promise<Answer> {
  const r = postInTwoHalves(port, path, contentType, body);
  await r.sent;
  r.finish();
  return r.answer;
}

for (const backend of backends()) {
  t.test(`SIGTERM lets the requests in flight finish (${backend.name})`, async (t) => {
    const port = await freePort();
    const server = await startServer({ PORT: String(port), DATABASE_URL: await backend.create(), LATCHKEY_KEK: TEST_KEK, CWD: tempDir() });
    t.teardown(() => server.stop('SIGKILL'));

    // in flight: a POST to a route that does not exist (answered 404 once its body is read) and,
    // when the server has one, a POST to the token endpoint (answered by its real handler)
    const meta = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as { token_endpoint?: string };
    const form = 'application/x-www-form-urlencoded';
    const padding = 'x'.repeat(4000);
    const targets: Array<{ path: string; type: string; body: string; expected: Answer }> = [];
    const unknown = `/slow-${crypto.randomBytes(8).toString('hex')}`;
    targets.push({
      path: unknown,
      type: 'application/json',
      body: JSON.stringify({ padding }),
      expected: { status: 404, json: { error: 'not_found', error_description: 'no such route' } },
    });
    if (meta.token_endpoint) {
      const path = new URL(meta.token_endpoint).pathname;
      const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'no-such-client', client_secret: 'x', padding }).toString();
      // its normal answer: the same request, sent at once
      targets.push({ path, type: form, body, expected: await post(port, path, form, body) });
    } else {
      t.comment('no token endpoint yet: only the unknown route is exercised');
    }

    // an idle keep-alive connection must not hold the shutdown up
    const idle = net.connect(port, '127.0.0.1');
    idle.on('error', () => {});
    await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
    idle.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`);
    await waitFor(async () => (idle.bytesRead > 0 ? true : undefined));

    // the server has each request in hand (it said "100 Continue") before the signal is sent
    const inFlight = targets.map((target) => ({ target, ...postInTwoHalves(port, target.path, target.type, target.body) }));
    for (const f of inFlight) await f.sent;
    server.proc.kill('SIGTERM');
    await waitFor(async () => (/"signal":"SIGTERM"/.test(server.stdout()) ? true : undefined));

    // no new connection is served normally while it drains
    const late = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.status,
      () => 'refused',
    );
    t.not(late, 200, `a request arriving after SIGTERM is not served (${late})`);
    t.equal(server.proc.exitCode, null, 'the process waits for the requests in flight');

    for (const f of inFlight) f.finish();
    for (const f of inFlight) {
      const res = await f.answer;
      t.equal(res.status, f.target.expected.status, `POST ${f.target.path} in flight gets its normal status (${res.status})`);
      t.equal(res.json.error, f.target.expected.json.error, `and its normal answer (${String(res.json.error)})`);
    }

    t.equal(await server.exited, 0, 'then the process exits 0');
    idle.destroy();
  });
}

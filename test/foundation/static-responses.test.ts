// Discovery and the JWKS answered from a snapshot of Fastify's own response (src/http/static-responses.ts):
// the same bytes and headers as the route, never stale after a key change, and only for a plain GET.
import t from 'tap';
import http from 'node:http';
import Fastify from 'fastify';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, freePort } from '../helpers/runtime.js';
import { revokeKey } from '../../src/keys/rotation.js';
import { StaticResponses } from '../../src/http/static-responses.js';

t.teardown(dropCreatedDatabases);

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

async function get(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    if (k !== 'date') headers[k] = v;
  });
  return { status: res.status, headers, body: await res.text() };
}

/** GETs `url` until the snapshot answers it (the first GET only starts the snapshot). */
async function fromSnapshot(statics: StaticResponses, url: string): Promise<Answer> {
  for (let i = 0; i < 200; i++) {
    const before = statics.answered;
    const a = await get(url);
    if (statics.answered === before + 1) return a;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${url} never answered from a snapshot`);
}

const PATHS = ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/.well-known/jwks.json'];

for (const backend of backends()) {
  t.test(`static documents on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    let closed = false;
    t.teardown(() => (closed ? undefined : env.close()));
    const { rt, config, app } = env;
    const statics = app.staticResponses;

    for (const path of PATHS) {
      const snap = await fromSnapshot(statics, `${config.issuer}${path}`);
      const before = statics.answered;
      // a query string is not the exact path: Fastify answers, through every hook
      const routed = await get(`${config.issuer}${path}?from=fastify`);
      t.equal(statics.answered, before, `${path}?query is answered by Fastify`);
      t.equal(snap.status, 200);
      t.equal(snap.body, routed.body, `${path}: the same body`);
      t.same(snap.headers, routed.headers, `${path}: the same headers, security headers included`);
      t.equal(snap.headers['x-content-type-options'], 'nosniff');
      t.match(snap.headers['content-security-policy'], /default-src 'none'/);
    }

    const jwksUri = `${config.issuer}/.well-known/jwks.json`;
    const first = await fromSnapshot(statics, jwksUri);
    const etag = first.headers.etag;
    t.ok(etag);

    t.test('only a plain GET of the exact path is answered from the snapshot', async (t) => {
      const before = statics.answered;
      const head = await fetch(jwksUri, { method: 'HEAD' });
      t.equal(head.status, 200);
      t.equal(head.headers.get('etag'), etag);
      const notModified = await fetch(jwksUri, { headers: { 'if-none-match': etag } });
      t.equal(notModified.status, 304, 'If-None-Match still gets a 304 (from the route)');
      const post = await fetch(jwksUri, { method: 'POST' });
      t.not(post.status, 200);
      await post.arrayBuffer();
      t.equal(statics.answered, before, 'none of these came from the snapshot');
    });

    t.test('a key change is served by the first request after the keystore has it', async (t) => {
      const next = rt.keystore.list().find((k) => k.alg === 'ES256' && k.state === 'next')!.kid;
      t.match(first.body, next);
      await revokeKey(rt, next, { reason: 'test' });
      // as `keys revoke` and the admin API do in a running server (other replicas reload on the NOTIFY)
      await rt.keystore.reload();
      // no waiting: the snapshot's version (the ETag) no longer matches, so Fastify answers
      const after = await get(jwksUri);
      t.not(after.headers.etag, etag, 'new ETag');
      t.notMatch(after.body, next, 'the revoked key is gone at once');
      const snap = await fromSnapshot(statics, jwksUri);
      t.equal(snap.body, after.body, 'the new snapshot is the new document');
      t.equal(snap.headers.etag, after.headers.etag);
    });

    t.test('nothing is answered from a snapshot once the server closes', async (t) => {
      closed = true;
      await env.close();
      const res = { writeHead: () => t.fail('wrote a response'), end: () => t.fail('wrote a response') } as unknown as http.ServerResponse;
      const req = { method: 'GET', url: '/.well-known/jwks.json', headers: {} } as http.IncomingMessage;
      t.equal(statics.answer(req, res), false);
    });
  });
}

t.test('only a shareable 200 is snapshotted', async (t) => {
  let status = 503;
  const statics = new StaticResponses();
  const app = Fastify({ serverFactory: statics.serverFactory });
  statics.attach(app);
  const config = { staticVersion: () => String(status) };
  const pub = 'public, max-age=60';
  app.get('/varies', { config }, async (_req, reply) => reply.header('cache-control', pub).header('vary', 'origin').send({ ok: true }));
  app.get('/fails', { config }, async (_req, reply) => reply.header('cache-control', pub).code(500).send({ ok: false }));
  app.get('/private', { config }, async (_req, reply) => reply.header('cache-control', 'private, max-age=60').send({ ok: true }));
  app.get('/sets-cookie', { config }, async (_req, reply) => reply.header('cache-control', pub).header('set-cookie', 'a=b').send({ ok: true }));
  app.get('/versioned', { config }, async (_req, reply) => reply.header('cache-control', pub).code(status === 503 ? 503 : 200).send({ status }));
  const port = await freePort();
  await app.listen({ port, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const base = `http://127.0.0.1:${port}`;

  for (let i = 0; i < 5; i++) {
    t.equal((await get(`${base}/varies`)).status, 200);
    t.equal((await get(`${base}/fails`)).status, 500);
    t.equal((await get(`${base}/private`)).status, 200);
    t.equal((await get(`${base}/sets-cookie`)).status, 200);
    t.equal((await get(`${base}/versioned`)).status, 503);
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(statics.answered, 0, 'Vary, an error status, a private response, Set-Cookie or a 503 keep the route answering');

  status = 200;
  const a = await fromSnapshot(statics, `${base}/versioned`);
  t.same(JSON.parse(a.body), { status: 200 }, 'the 503 was not kept; the 200 with Cache-Control: public was');
});

// The Fastify plugin, the Fastify preHandler and the Express-style middleware of @latchkey/verify:
// claims on request.auth, RFC 6750 answers otherwise.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import { bearerToken, createVerifier, expressVerifier, fastifyVerifier, latchkeyAuth, type MiddlewareRequest } from '../../packages/verify/src/index.js';
import { startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.js';

const AUD = 'https://api.example.com';

interface Answer {
  status: number;
  wwwAuthenticate: string | undefined;
  cacheControl: string | undefined;
  body: Record<string, unknown>;
}

/** The checks every adapter must pass; `call` sends one request with the given Authorization header(s). */
async function contract(t: Test, issuer: FakeIssuer, call: (authorization?: string | string[], path?: string) => Promise<Answer>) {
  const token = await issuer.signAccessToken();
  let r = await call(`Bearer ${token}`);
  t.equal(r.status, 200, 'a valid token passes');
  t.equal(r.body.sub, 'user-1', 'the claims are on request.auth');
  t.equal(r.body.client_id, 'client-1');
  r = await call(`bEaReR ${token}`);
  t.equal(r.status, 200, 'the scheme is case-insensitive');
  r = await call(`Bearer   ${token}  `);
  t.equal(r.status, 200, 'several spaces between scheme and token, trailing spaces');

  r = await call(undefined);
  t.equal(r.status, 401, 'no Authorization header: 401');
  t.equal(r.wwwAuthenticate, 'Bearer, DPoP algs="ES256 EdDSA Ed25519 RS256 PS256"', 'with bare challenges, Bearer and DPoP (RFC 6750 §3.1: no error code; RFC 9449 §7.1)');
  r = await call('Basic dXNlcjpwYXNz');
  t.equal(r.status, 401, 'another scheme: 401');
  t.equal(r.wwwAuthenticate, 'Bearer, DPoP algs="ES256 EdDSA Ed25519 RS256 PS256"');

  for (const bad of ['Bearer', 'Bearer ', `Bearer ${token} extra`, 'Bearer a"b', `Bearer\t${token}`]) {
    r = await call(bad);
    t.equal(r.status, 400, `malformed ${JSON.stringify(bad.slice(0, 12))}: 400`);
    t.match(r.wwwAuthenticate, /^Bearer error="invalid_request", error_description="[^"]+"$/);
    t.equal(r.body.error, 'invalid_request');
  }

  r = await call('Bearer not.a.jwt');
  t.equal(r.status, 401, 'a malformed token: 401');
  t.match(r.wwwAuthenticate, /^Bearer error="invalid_token", error_description="[^"]+"$/);
  t.equal(r.body.error, 'invalid_token');
  t.equal(r.cacheControl, 'no-store');

  issuer.lists.get('1')!.statuses[3] = 1;
  issuer.advance(11);
  r = await call(`Bearer ${token}`);
  t.equal(r.status, 401, 'a revoked token: 401');
  t.equal(r.wwwAuthenticate, 'Bearer error="invalid_token", error_description="the token has been revoked"');
  t.same(r.body, { error: 'invalid_token', error_description: 'the token has been revoked' });
  issuer.lists.get('1')!.statuses[3] = 0;
  issuer.advance(11);

  r = await call(`Bearer ${token}`, '/write');
  t.equal(r.status, 403, 'a route requiring a scope the token lacks: 403');
  t.equal(r.wwwAuthenticate, 'Bearer error="insufficient_scope", error_description="the token lacks the scope api:write", scope="api:write"');
  r = await call(`Bearer ${await issuer.signAccessToken({ scope: 'api:read api:write' })}`, '/write');
  t.equal(r.status, 200, 'and 200 with it');
}

t.test('bearerToken', async (t) => {
  t.equal(bearerToken('Bearer abc.def-_~+/=='), 'abc.def-_~+/==');
  const thrown = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return err as Record<string, unknown>;
    }
    return {};
  };
  t.match(thrown(() => bearerToken(['Bearer a', 'Bearer b'])), { reason: 'malformed_header', status: 400 }, 'two headers');
  t.match(thrown(() => bearerToken('Bearer ab=c')), { reason: 'malformed_header' }, 'padding inside');
  t.match(thrown(() => bearerToken(undefined)), { reason: 'missing_token', status: 401, wwwAuthenticate: 'Bearer' }, 'none');
});

t.test('the Fastify plugin guards the context it is registered in', async (t) => {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {} });
  const app = Fastify();
  t.teardown(() => app.close());
  app.get('/public', async () => ({ public: true }));
  await app.register(async (api) => {
    await api.register(latchkeyAuth, { verifier });
    api.get('/', async (request) => request.auth);
    await api.register(async (inner) => {
      inner.addHook('preHandler', fastifyVerifier(verifier, { scope: 'api:write' }));
      inner.get('/write', async (request) => request.auth);
    });
  });
  const call = async (authorization?: string | string[], path = '/'): Promise<Answer> => {
    const res = await app.inject({ method: 'GET', url: path, headers: authorization === undefined ? {} : { authorization: authorization as string } });
    return { status: res.statusCode, wwwAuthenticate: res.headers['www-authenticate'] as string | undefined, cacheControl: res.headers['cache-control'] as string | undefined, body: res.json() };
  };
  await contract(t, issuer, call);
  const res = await app.inject({ method: 'GET', url: '/public' });
  t.equal(res.statusCode, 200, 'a route outside the guarded context is not guarded');

  // the plugin built from verifier options, on a route-level preHandler elsewhere
  const app2 = Fastify();
  t.teardown(() => app2.close());
  await app2.register(latchkeyAuth, { issuer: issuer.url, audience: AUD, now: issuer.now, statusList: 'off' });
  app2.get('/', async (request) => request.auth);
  const r = await app2.inject({ method: 'GET', url: '/', headers: { authorization: `Bearer ${await issuer.signAccessToken()}` } });
  t.equal(r.statusCode, 200, 'latchkeyAuth with verifier options');
  t.equal(r.json().sub, 'user-1');
});

t.test('the Express-style middleware', async (t) => {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {} });
  const guard = expressVerifier(verifier);
  const writeGuard = expressVerifier(verifier, { scope: ['api:write'] });
  // connect/express call middleware as (req, res, next): a chain of one, then the handler
  const server = http.createServer((req, res) => {
    const mw = req.url === '/write' ? writeGuard : guard;
    mw(req as http.IncomingMessage & MiddlewareRequest, res, (err?: unknown) => {
      if (err) {
        res.statusCode = 500;
        res.end('{}');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify((req as MiddlewareRequest).auth));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (authorization?: string | string[], path = '/'): Promise<Answer> => {
    const headers = new Headers();
    if (typeof authorization === 'string') headers.set('authorization', authorization);
    const res = await fetch(base + path, { headers });
    return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate') ?? undefined, cacheControl: res.headers.get('cache-control') ?? undefined, body: (await res.json()) as Record<string, unknown> };
  };
  await contract(t, issuer, call);
});

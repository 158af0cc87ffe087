// The security headers are computed by helmet once and replayed (src/http/plugins/security-headers.ts):
// the recording must hold exactly what helmet sets on a real response, and refuse a middleware
// whose effect a replay could not reproduce.
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import t from 'tap';
import { recordHeaders } from '../../src/http/plugins/security-headers.js';

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

t.test('the recording is what helmet sets on a real response', async (t) => {
  const mw = helmet({ contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } }, strictTransportSecurity: { maxAge: 31536000, includeSubDomains: true } }) as unknown as Middleware;
  const recorded = recordHeaders(mw);
  const server = http.createServer((req, res) => mw(req, res, () => res.end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const res = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
  await res.arrayBuffer();
  const real = new Map<string, string>();
  res.headers.forEach((v, k) => {
    if (!['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'].includes(k)) real.set(k, v);
  });
  t.same(new Map(recorded.map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(', ') : v])), real, 'same names and values');
  t.ok(real.has('content-security-policy') && real.has('strict-transport-security') && real.has('x-content-type-options'), 'the headers that matter are there');
});

t.test('a middleware a replay could not reproduce is refused at start-up', async (t) => {
  t.throws(() => recordHeaders((_req, res, next) => {
    res.removeHeader('cache-control');
    next();
  }), /removed cache-control/);
  t.throws(() => recordHeaders((_req, _res, next) => void setTimeout(next, 1)), /synchronously/);
  t.throws(() => recordHeaders((_req, _res, next) => next(new Error('boom'))), /boom/);
  t.same(recordHeaders((_req, res, next) => {
    res.removeHeader('X-Powered-By');
    res.setHeader('x-a', '1');
    next();
  }), [['x-a', '1']], 'removing X-Powered-By (which Fastify never sets) is fine');
});

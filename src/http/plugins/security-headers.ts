// Security headers, by helmet (the library @fastify/helmet wraps). @fastify/helmet builds a new
// helmet middleware on every request (and runs an extra async hook for its reply decorators),
// which cost a few microseconds per request on the hottest endpoints; here each header set is
// computed by helmet once at start-up (recordHeaders) and replayed from one synchronous
// onRequest hook.
//
// Two sets: the JSON endpoints get what an API needs (OWASP REST Security Cheat Sheet): nosniff,
// no framing, a CSP that allows nothing, no referrer, HSTS on https. Everything else (HTML pages,
// redirects, errors) gets helmet's browser-page set; the pages add their own CSP.
import type { FastifyInstance } from 'fastify';
import helmet from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

export const API_PATHS = new Set([
  '/token',
  '/introspect',
  '/revoke',
  '/userinfo',
  '/.well-known/openid-configuration',
  '/.well-known/oauth-authorization-server',
  '/.well-known/jwks.json',
  '/healthz',
  '/readyz',
]);

export function registerSecurityHeaders(app: FastifyInstance, opts: { https: boolean }): void {
  const base = {
    // the HTML pages set their own CSP (with the client's form-action)
    contentSecurityPolicy: false,
    crossOriginResourcePolicy: false,
    referrerPolicy: { policy: 'same-origin' as const },
    strictTransportSecurity: opts.https ? { maxAge: 31536000, includeSubDomains: true } : false,
  };
  const pages = helmet(base) as unknown as Middleware;
  const api = helmet({
    ...base,
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    xFrameOptions: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginOpenerPolicy: false,
    originAgentCluster: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
  }) as unknown as Middleware;

  app.addHook('onRoute', (route) => {
    const paths = Array.isArray(route.url) ? route.url : [route.url];
    if (paths.every((p) => API_PATHS.has(p) || p.startsWith('/admin/'))) {
      route.config = Object.assign(route.config ?? {}, { apiHeaders: true });
    }
  });
  const apiHeaders = recordHeaders(api);
  const pageHeaders = recordHeaders(pages);
  app.addHook('onRequest', (req, reply, done) => {
    const config = req.routeOptions.config as { apiHeaders?: boolean } | undefined;
    const headers = config?.apiHeaders ? apiHeaders : pageHeaders;
    const res = reply.raw;
    for (let i = 0; i < headers.length; i++) res.setHeader(headers[i][0], headers[i][1]);
    done();
  });
}

/**
 * The headers a helmet middleware sets, found by running it once against a response that records
 * them. Helmet's middlewares (with these options: no CSP nonces, nothing per request) set the same
 * headers on every response and remove only X-Powered-By, which Fastify never sets; replaying the
 * recorded list costs a loop of setHeader instead of helmet's chain of ten middlewares per request.
 * Anything else a middleware does (removing a header, failing) is refused at start-up.
 */
export function recordHeaders(middleware: Middleware): [string, string | string[]][] {
  const headers: [string, string | string[]][] = [];
  const res = {
    setHeader(name: string, value: string | string[]) {
      headers.push([name, value]);
      return res;
    },
    removeHeader(name: string) {
      if (name.toLowerCase() !== 'x-powered-by') throw new Error(`helmet removed ${name}: the recorded header set would differ`);
    },
  };
  let called = false;
  middleware({ headers: {} } as IncomingMessage, res as unknown as ServerResponse, (err) => {
    if (err) throw err instanceof Error ? err : new Error(String(err));
    called = true;
  });
  if (!called) throw new Error('helmet did not finish synchronously: its headers cannot be recorded');
  return headers;
}

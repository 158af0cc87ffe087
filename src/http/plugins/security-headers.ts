// Security headers, by helmet (the library @fastify/helmet wraps). @fastify/helmet builds a new
// helmet middleware on every request (and runs an extra async hook for its reply decorators),
// which cost a few microseconds per request on the hottest endpoints; here each header set is
// built once at start-up and applied from one synchronous onRequest hook.
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
  app.addHook('onRequest', (req, reply, done) => {
    const config = req.routeOptions.config as { apiHeaders?: boolean } | undefined;
    (config?.apiHeaders ? api : pages)(req.raw, reply.raw, (err) => done(err as Error | undefined));
  });
}

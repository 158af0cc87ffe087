// One error handler maps everything to the wire format: `{error, error_description}` with the
// status the RFC names. Bad input never yields a 500 or a stack trace, and neither does a database
// outage: whatever the route, it is a 503 with Retry-After (`temporarily_unavailable`, or for a
// browser a page that says to try again in a moment), counted by the outage state, which logs it
// once (src/db/health.ts). Past the outage grace every route but those marked `duringOutage`
// answers so before it runs.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OAuthError, TemporarilyUnavailable } from '../../core/errors.js';
import type { Config } from '../../core/config.js';
import { DatabaseUnavailable, isDatabaseUnavailable } from '../../db/errors.js';
import type { DbHealth } from '../../db/health.js';
import { sendPage } from '../browser.js';
import { unavailablePage } from '../views/pages.js';
import { metrics } from '../../core/metrics.js';

export type ErrorRenderer = (err: OAuthError, req: FastifyRequest, reply: FastifyReply) => unknown;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** How a route answers an error; JSON when absent. */
    renderError?: ErrorRenderer;
    /** The error code for schema failures on this route (default invalid_request). */
    schemaErrorCode?: string;
    /** The route answers past the outage grace too (health checks, the stylesheet). */
    duringOutage?: boolean;
  }
}

/** Seconds a client should wait before trying again during an outage. */
export const OUTAGE_RETRY_AFTER = 1;

function toOAuthError(err: FastifyError, req: FastifyRequest): OAuthError | undefined {
  if (err instanceof OAuthError) return err;
  if (err.validation) {
    const code = req.routeOptions.config?.schemaErrorCode ?? 'invalid_request';
    const field = err.validation[0]?.instancePath?.replace(/^\//, '') || (err.validation[0]?.params as { missingProperty?: string } | undefined)?.missingProperty;
    const e = new OAuthError(code, field ? `invalid or missing parameter: ${field}` : 'invalid request parameters');
    return e;
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return new OAuthError('invalid_request', status === 413 ? 'the request body is too large' : status === 415 ? 'unsupported content type (use application/x-www-form-urlencoded)' : 'the request is malformed', {
      status: status === 415 ? 400 : status,
    });
  }
  return undefined;
}

/** A browser navigation or form post (it asks for HTML) gets a page; everything else JSON. */
function wantsPage(req: FastifyRequest): boolean {
  const accept = req.headers.accept;
  return typeof accept === 'string' && /\btext\/html\b/i.test(accept);
}

function sendUnavailable(req: FastifyRequest, reply: FastifyReply, config: Config): FastifyReply {
  const err = new TemporarilyUnavailable('the service is briefly unavailable; try again in a moment', OUTAGE_RETRY_AFTER);
  reply.headers(err.headers);
  if (wantsPage(req)) {
    // a GET can simply be repeated; a form is submitted again from the page before (its
    // interaction and CSRF token are still valid: nothing was consumed)
    const retryUrl = req.method === 'GET' ? `${config.issuer}${req.url}` : undefined;
    return sendPage(reply, config, 503, unavailablePage({ retryUrl }));
  }
  return reply.code(503).header('cache-control', 'no-store').type('application/json').send(err.toJSON());
}

export interface ErrorHandlingOptions {
  config: Config;
  health: DbHealth;
}

export function registerErrorHandling(app: FastifyInstance, { config, health }: ErrorHandlingOptions): void {
  // a callback hook, not an async one: it runs on every request
  app.addHook('onRequest', (req, _reply, done) => {
    if (health.pastGrace() && !req.routeOptions.config?.duringOutage) return done(new DatabaseUnavailable('the database has been unreachable for longer than the outage grace'));
    done();
  });

  app.setErrorHandler((error: FastifyError, req, reply) => {
    if (isDatabaseUnavailable(error)) {
      // our own refusals (the gate, the caches) follow from what the outage state already knows
      if (!(error instanceof DatabaseUnavailable)) health.reportFailure(error);
      health.noteRefused();
      return sendUnavailable(req, reply, config);
    }
    let oauth = toOAuthError(error, req);
    if (!oauth) {
      req.log.error({ err: { type: error.name, message: error.message, stack: error.stack } }, 'unhandled error');
      oauth = new OAuthError('server_error', 'internal error', { status: 500 });
    } else if (oauth.statusCode >= 500) {
      req.log.warn({ error: oauth.error }, oauth.description);
    }
    const render = req.routeOptions.config?.renderError;
    if (render) return render(oauth, req, reply);
    reply.code(oauth.statusCode).headers(oauth.headers).header('cache-control', 'no-store').type('application/json');
    return reply.send(oauth.toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    metrics.observeRequest(req.method, undefined, 404);
    reply.code(404).header('cache-control', 'no-store').send({ error: 'not_found', error_description: 'no such route' });
  });
}

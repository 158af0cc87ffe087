// One error handler maps everything to the wire format: `{error, error_description}` with the
// status the RFC names. Bad input never yields a 500 or a stack trace.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { metrics } from '../../metrics/metrics.js';
import { OAuthError } from '../../errors.js';

export type ErrorRenderer = (err: OAuthError, req: FastifyRequest, reply: FastifyReply) => unknown;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** How a route answers an error; JSON when absent. */
    renderError?: ErrorRenderer;
    /** The error code for schema failures on this route (default invalid_request). */
    schemaErrorCode?: string;
  }
}

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
    const e = new OAuthError('invalid_request', status === 413 ? 'the request body is too large' : status === 415 ? 'unsupported content type (use application/x-www-form-urlencoded)' : 'the request is malformed');
    Object.defineProperty(e, 'statusCode', { value: status === 415 ? 400 : status });
    return e;
  }
  return undefined;
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, req, reply) => {
    let oauth = toOAuthError(error, req);
    if (!oauth) {
      req.log.error({ err: { type: error.name, message: error.message, stack: error.stack } }, 'unhandled error');
      oauth = new OAuthError('server_error', 'internal error');
      Object.defineProperty(oauth, 'statusCode', { value: 500 });
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

// The verifier at the door of a route: a Fastify plugin / preHandler and an Express-style
// middleware. Both put the claims on `request.auth` and answer RFC 6750 errors themselves.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequest, VerifyError } from './errors.js';
import { createVerifier, type AccessTokenClaims, type Verifier, type VerifierOptions, type VerifyOptions } from './verifier.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified access token's claims (set by @latchkey/verify). */
    auth?: AccessTokenClaims | null;
  }
}

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1)
const CREDENTIALS = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?: +([^ ]*))? *$/;
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** The bearer token of an Authorization header, or InvalidRequest. */
export function bearerToken(header: string | string[] | undefined): string {
  if (header === undefined || header === '') throw new InvalidRequest('missing_token', 'a bearer token is required');
  if (Array.isArray(header)) throw new InvalidRequest('malformed_header', 'more than one Authorization header');
  const m = CREDENTIALS.exec(header);
  if (!m) throw new InvalidRequest('malformed_header', 'the Authorization header is malformed');
  // another scheme (Basic, DPoP…) carries no bearer token: the answer is the bare challenge
  if (m[1]!.toLowerCase() !== 'bearer') throw new InvalidRequest('missing_token', 'a bearer token is required');
  if (!m[2] || !B64TOKEN.test(m[2])) throw new InvalidRequest('malformed_header', 'the Authorization header is malformed');
  return m[2];
}

export interface GuardOptions extends VerifyOptions {}

/** A Fastify `onRequest`/`preHandler` hook: `{ preHandler: fastifyVerifier(verifier) }` on a route. */
export function fastifyVerifier(verifier: Verifier, options: GuardOptions = {}) {
  return async function latchkeyVerify(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      request.auth = await verifier.verify(bearerToken(request.headers.authorization), options);
    } catch (err) {
      if (!(err instanceof VerifyError)) throw err;
      request.auth = null;
      await reply.code(err.status).header('www-authenticate', err.wwwAuthenticate).header('cache-control', 'no-store').send(err.toJSON());
    }
  };
}

export type LatchkeyAuthOptions = GuardOptions & ({ verifier: Verifier } | VerifierOptions);

/**
 * A Fastify plugin that guards every route of the context it is registered in (like a plugin
 * wrapped in fastify-plugin): `app.register(latchkeyAuth, { issuer, audience })`.
 */
export const latchkeyAuth: FastifyPluginCallback<LatchkeyAuthOptions> = Object.assign(
  function latchkeyAuth(app: Parameters<FastifyPluginCallback>[0], options: LatchkeyAuthOptions, done: (err?: Error) => void) {
    const verifier = 'verifier' in options ? options.verifier : createVerifier(options);
    if (!app.hasRequestDecorator('auth')) app.decorateRequest('auth', null);
    app.addHook('onRequest', fastifyVerifier(verifier, { scope: options.scope }));
    done();
  },
  // what fastify-plugin sets: the hook applies to the registering context, not a child of it
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: '@latchkey/verify' },
);

export interface MiddlewareRequest {
  headers: IncomingHttpHeaders;
  auth?: AccessTokenClaims | null;
}

/** An Express-style middleware `(req, res, next)`; `req.auth` holds the claims. */
export function expressVerifier(verifier: Verifier, options: GuardOptions = {}) {
  return function latchkeyVerify(req: MiddlewareRequest, res: ServerResponse, next: (err?: unknown) => void): void {
    let token: string;
    try {
      token = bearerToken(req.headers.authorization);
    } catch (err) {
      answer(res, err as VerifyError);
      return;
    }
    verifier.verify(token, options).then(
      (claims) => {
        req.auth = claims;
        next();
      },
      (err: unknown) => {
        if (err instanceof VerifyError) answer(res, err);
        else next(err);
      },
    );
  };
}

function answer(res: ServerResponse, err: VerifyError): void {
  const body = JSON.stringify(err.toJSON());
  res.statusCode = err.status;
  res.setHeader('WWW-Authenticate', err.wwwAuthenticate);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

// The verifier at the door of a route: a Fastify plugin / preHandler and an Express-style
// middleware. Both put the claims on `request.auth` and answer RFC 6750 / RFC 9449 errors themselves.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULT_DPOP_ALGORITHMS, InvalidRequest, VerifyError } from './errors.js';
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

/** The bearer token of an Authorization header, or InvalidRequest. (Bearer only: see `accessToken` for DPoP too.) */
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

export interface Credentials {
  scheme: 'Bearer' | 'DPoP';
  token: string;
}

/**
 * The access token of an Authorization header, `Bearer <token>` (RFC 6750 §2.1) or `DPoP <token>`
 * (RFC 9449 §7.1), or InvalidRequest: with no token (or another scheme), a 401 with both challenges
 * (`Bearer, DPoP algs="…"`); a malformed credential, a 400 challenged in its own scheme.
 */
export function accessToken(header: string | string[] | undefined, dpopAlgorithms: readonly string[] = DEFAULT_DPOP_ALGORITHMS): Credentials {
  const missing = () => new InvalidRequest('missing_token', 'an access token is required', dpopAlgorithms);
  if (header === undefined || header === '') throw missing();
  if (Array.isArray(header)) throw new InvalidRequest('malformed_header', 'more than one Authorization header');
  const m = CREDENTIALS.exec(header);
  if (!m) throw new InvalidRequest('malformed_header', 'the Authorization header is malformed');
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'dpop') throw missing();
  if (!m[2] || !B64TOKEN.test(m[2])) {
    throw new InvalidRequest('malformed_header', 'the Authorization header is malformed', scheme === 'dpop' ? { scheme: 'DPoP', algs: dpopAlgorithms } : undefined);
  }
  return { scheme: scheme === 'dpop' ? 'DPoP' : 'Bearer', token: m[2] };
}

/**
 * The URL a DPoP proof's `htu` is compared with (RFC 9449 §4.3): the URL the client sent the request
 * to. A string is the public base URL of this resource server (`https://api.example.com`, or with a
 * path prefix a proxy strips), to which the request's path is appended; a function returns the
 * whole URL (query and fragment are ignored either way; what it throws is no VerifyError: Fastify
 * answers 500, the middleware calls `next(err)`).
 */
export type PublicUrl<R> = string | ((request: R) => string);

export interface GuardOptions<R = FastifyRequest> extends Omit<VerifyOptions, 'dpop'> {
  /**
   * Default: `<protocol>://<Host header><path>` — this trusts the Host header (and with Fastify's
   * `trustProxy`, X-Forwarded-Host/Proto). Behind a proxy, or to pin it, set the public URL.
   * Required when NODE_ENV=production (the guard throws at construction without it).
   */
  publicUrl?: PublicUrl<R>;
}

function requestUrl<R>(publicUrl: PublicUrl<R> | undefined, request: R, path: string, fallback: () => string): string {
  if (typeof publicUrl === 'function') return publicUrl(request);
  if (typeof publicUrl === 'string') return publicUrl.replace(/\/+$/, '') + (path.startsWith('/') ? path : `/${path}`);
  return fallback();
}

/** The verify options of one request: the DPoP scheme brings its proof, method and URL. */
function verifyOptions<R>(credentials: Credentials, options: GuardOptions<R>, headers: IncomingHttpHeaders, method: string, url: () => string): VerifyOptions {
  const { publicUrl: _publicUrl, ...rest } = options;
  if (credentials.scheme !== 'DPoP') return rest;
  return { ...rest, dpop: { proof: headers.dpop, method, url: url() } };
}

function checkPublicUrl(publicUrl: unknown): void {
  // Without publicUrl, htu comes from the Host header: a proof captured at one API could be replayed
  // at another host that accepts the same audience with its own replay store, by sending the first
  // API's Host (issue 23). Fail at boot, not silently: a function keeps several hosts possible.
  if (publicUrl === undefined && process.env.NODE_ENV === 'production') {
    throw new TypeError('publicUrl is required when NODE_ENV=production: the public URL of this API (or (request) => url), not the Host header, is what DPoP proofs are compared with');
  }
  if (publicUrl === undefined || typeof publicUrl === 'function') return;
  if (typeof publicUrl !== 'string' || !URL.canParse(publicUrl) || !/^https?:$/.test(new URL(publicUrl).protocol)) throw new TypeError('publicUrl must be an absolute http(s) URL or a function');
}

/** A Fastify `onRequest`/`preHandler` hook: `{ preHandler: fastifyVerifier(verifier) }` on a route. */
export function fastifyVerifier(verifier: Verifier, options: GuardOptions<FastifyRequest> = {}) {
  checkPublicUrl(options.publicUrl);
  const algs = verifier.dpopAlgorithms ?? DEFAULT_DPOP_ALGORITHMS;
  return async function latchkeyVerify(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      const credentials = accessToken(request.headers.authorization, algs);
      const opts = verifyOptions(credentials, options, request.headers, request.method, () =>
        // no Host header: no URL, and the htu check refuses the proof
        requestUrl(options.publicUrl, request, request.url, () => (request.host ? `${request.protocol}://${request.host}${request.url}` : '')),
      );
      request.auth = await verifier.verify(credentials.token, opts);
    } catch (err) {
      if (!(err instanceof VerifyError)) throw err;
      request.auth = null;
      await reply.code(err.status).header('www-authenticate', err.wwwAuthenticate).header('cache-control', 'no-store').send(err.toJSON());
    }
  };
}

export type LatchkeyAuthOptions = GuardOptions<FastifyRequest> & ({ verifier: Verifier } | VerifierOptions);

/**
 * A Fastify plugin that guards every route of the context it is registered in (like a plugin
 * wrapped in fastify-plugin): `app.register(latchkeyAuth, { issuer, audience })`.
 */
export const latchkeyAuth: FastifyPluginCallback<LatchkeyAuthOptions> = Object.assign(
  function latchkeyAuth(app: Parameters<FastifyPluginCallback>[0], options: LatchkeyAuthOptions, done: (err?: Error) => void) {
    let guard;
    try {
      guard = fastifyVerifier('verifier' in options ? options.verifier : createVerifier(options), { scope: options.scope, publicUrl: options.publicUrl });
    } catch (err) {
      done(err as Error);
      return;
    }
    if (!app.hasRequestDecorator('auth')) app.decorateRequest('auth', null);
    app.addHook('onRequest', guard);
    done();
  },
  // what fastify-plugin sets: the hook applies to the registering context, not a child of it
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: '@latchkey/verify' },
);

export interface MiddlewareRequest {
  headers: IncomingHttpHeaders;
  auth?: AccessTokenClaims | null;
  method?: string;
  /** the path and query (node's `req.url`; Express strips a mount path from it) */
  url?: string;
  /** Express: the path and query as received, mount path included */
  originalUrl?: string;
  /** Express: `req.protocol` (honours its `trust proxy` setting) */
  protocol?: string;
  socket?: { encrypted?: boolean } | null;
}

/** An Express-style middleware `(req, res, next)`; `req.auth` holds the claims. */
export function expressVerifier(verifier: Verifier, options: GuardOptions<MiddlewareRequest> = {}) {
  checkPublicUrl(options.publicUrl);
  const algs = verifier.dpopAlgorithms ?? DEFAULT_DPOP_ALGORITHMS;
  return function latchkeyVerify(req: MiddlewareRequest, res: ServerResponse, next: (err?: unknown) => void): void {
    let token: string;
    let opts: VerifyOptions;
    try {
      const credentials = accessToken(req.headers.authorization, algs);
      token = credentials.token;
      const path = req.originalUrl ?? req.url ?? '/';
      opts = verifyOptions(credentials, options, req.headers, req.method ?? 'GET', () =>
        requestUrl(options.publicUrl, req, path, () => {
          const protocol = typeof req.protocol === 'string' ? req.protocol : req.socket?.encrypted ? 'https' : 'http';
          return req.headers.host ? `${protocol}://${req.headers.host}${path}` : '';
        }),
      );
    } catch (err) {
      if (err instanceof VerifyError) answer(res, err);
      else next(err);
      return;
    }
    verifier.verify(token, opts).then(
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

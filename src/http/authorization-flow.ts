// The steps shared by /authorize and the interaction pages: find the login session, decide whether
// login or consent is needed, and finish with a code (or an error) returned to the client in the
// response mode it asked for (RFC 6749 §4.1.2 query, or OAuth 2.0 Form Post Response Mode).
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Client } from '../core/model.js';
import { findLiveSession, type LoginSession } from '../store/login-sessions.js';
import { audiencesToConsent, consentCovers, findConsent } from '../store/consents.js';
import { CodeTooLarge, sealCode } from '../tokens/codes.js';
import { InvalidRequest } from '../core/errors.js';
import { buildRedirect, type AuthorizationRequest, type ResponseMode } from '../protocol/authorization-request.js';
import { requestedUserClaims } from '../protocol/claims-request.js';
import type { OAuthError } from '../core/errors.js';
import { formActionSource, readSignedCookie, sendHtml } from './browser.js';
import { formPostPage } from './views/pages.js';
import type { Services } from './services.js';

export async function currentSession(svc: Services, req: FastifyRequest): Promise<LoginSession | undefined> {
  const value = readSignedCookie(req, svc.cookies.session);
  if (!value) return undefined;
  return findLiveSession({ db: svc.rt.db, sessions: svc.sessions, users: svc.users }, value, svc.now(), svc.config.sessionIdleTtl);
}

/** OIDC Core §3.1.2.1: prompt=login and max_age demand a fresh authentication. */
export function sessionSatisfies(request: AuthorizationRequest, session: LoginSession | undefined, now: Date, freshLoginDone = false): boolean {
  if (!session) return false;
  if (freshLoginDone) return true;
  // max_age=0 is equivalent to prompt=login (OIDC Core §3.1.2.1, errata set 2), even when no time
  // has passed since the session's login
  if (request.prompt.includes('login') || request.maxAge === 0) return false;
  if (request.maxAge !== undefined && now.getTime() - session.authTime.getTime() > request.maxAge * 1000) return false;
  return true;
}

export async function needsConsent(svc: Services, client: Client, userId: string, request: AuthorizationRequest): Promise<boolean> {
  if (client.firstParty) return false;
  if (request.prompt.includes('consent')) return true;
  // remembered consent must cover the audiences too: a new resource asks again
  const consent = await findConsent(svc.rt.db, userId, client.clientId);
  return !consentCovers(consent, request.scopes, audiencesToConsent(request.resources, client.audiences));
}

/** An authorization response (code or error) on its way to the client's verified redirect URI. */
export interface AuthorizationResponse {
  redirectUri: string;
  responseMode: ResponseMode;
  params: Record<string, string | undefined>;
}

export function errorResponse(svc: Services, redirectUri: string, err: OAuthError, state: string | undefined, responseMode: ResponseMode = 'query'): AuthorizationResponse {
  return { redirectUri, responseMode, params: { error: err.error, error_description: err.description, state, iss: svc.config.issuer } };
}

export function codeResponse(svc: Services, request: AuthorizationRequest, session: LoginSession): AuthorizationResponse {
  let code: string;
  try {
    code = sealCode(
      svc.rt.codeSecret,
      {
        clientId: request.clientId,
        userId: session.userId,
        redirectUri: request.redirectUri,
        codeChallenge: request.codeChallenge ?? null,
        scopes: request.scopes,
        resources: request.resources,
        nonce: request.nonce ?? null,
        authTime: session.authTime,
        sessionSid: session.sid,
        idTokenClaims: requestedUserClaims(request.claims, 'id_token'),
        userinfoClaims: requestedUserClaims(request.claims, 'userinfo'),
        ...(request.dpopJkt ? { dpopJkt: request.dpopJkt } : {}),
      },
      svc.now(),
      svc.config.codeTtl,
    );
  } catch (err) {
    if (err instanceof CodeTooLarge) return errorResponse(svc, request.redirectUri, new InvalidRequest(err.message), request.state, request.responseMode);
    throw err;
  }
  // RFC 9207: iss in the authorization response
  return { redirectUri: request.redirectUri, responseMode: request.responseMode, params: { code, state: request.state, iss: svc.config.issuer } };
}

/** Return the response to the client: a 303 with the query (RFC 6749 §4.1.2), or a self-posting form. */
export function sendAuthorizationResponse(reply: FastifyReply, r: AuthorizationResponse): FastifyReply {
  if (r.responseMode === 'query') return redirect303(reply, buildRedirect(r.redirectUri, r.params));
  // Form Post Response Mode §5: its own CSP, allowing only this script and a post to the client
  const nonce = crypto.randomBytes(16).toString('base64');
  const csp = [`default-src 'none'`, `script-src 'nonce-${nonce}'`, `form-action ${formActionSource(r.redirectUri) || "'none'"}`, "frame-ancestors 'none'", "base-uri 'none'"].join('; ');
  return sendHtml(reply, 200, csp, formPostPage({ action: r.redirectUri, fields: r.params, nonce }));
}

/** 303 See Other: after a credentials POST the browser must GET the target (never 307). */
export function redirect303(reply: FastifyReply, url: string): FastifyReply {
  return reply.code(303).header('location', url).header('cache-control', 'no-store').send();
}

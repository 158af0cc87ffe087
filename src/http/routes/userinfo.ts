// /userinfo (OIDC Core §5.3): a Bearer access token meant for this endpoint (aud), from a user.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DPOP_CHALLENGE_ALGS, InvalidRequest, InvalidToken, OAuthError } from '../../core/errors.js';
import { presentedToken, verifyPresentedToken, type PresentedToken } from '../dpop.js';
import { userClaims } from '../../tokens/id-token.js';
import { REQUESTABLE_USER_CLAIMS } from '../../protocol/claims-request.js';
import { isUuid } from '../../store/users.js';
import { userinfoAudience } from '../../protocol/audience.js';
import type { Services } from '../services.js';

export interface AccessTokenGuard {
  /** Throws InvalidToken when the token was revoked (denylisted jti, revoked family). */
  assertNotRevoked(claims: { jti: string; fid?: string; sid?: string; status?: unknown }): Promise<void>;
}

export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (h === undefined) return undefined;
  // RFC 7235 §2.1, RFC 6750 §2.1: the scheme name is case-insensitive
  const m = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(h);
  if (!m) throw new InvalidToken('malformed Authorization header');
  return m[1];
}

export function registerUserinfo(app: FastifyInstance, svc: Services, guard: AccessTokenGuard): void {
  const audience = userinfoAudience(svc.config.issuer);
  const renderError = (err: OAuthError, _req: FastifyRequest, reply: FastifyReply) => {
    const headers = err.headers['www-authenticate'] ? err.headers : { ...err.headers, 'www-authenticate': `Bearer realm="latchkey", error="${err.error}"` };
    return reply.code(err.statusCode).headers(headers).header('cache-control', 'no-store').send(err.toJSON());
  };
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    let presented: PresentedToken | undefined = presentedToken(req);
    const body = req.body as Record<string, unknown> | undefined;
    if (req.method === 'POST' && body && typeof body.access_token === 'string') {
      if (presented) throw new InvalidRequest('the token was sent in more than one way');
      presented = { scheme: 'bearer', token: body.access_token }; // RFC 6750 §2.2
    }
    if (!presented) {
      // RFC 6750 §3.1: no error code when the request carried no token at all; both schemes are offered (RFC 9449 §7.1)
      reply.code(401).header('www-authenticate', `Bearer realm="latchkey", DPoP algs="${DPOP_CHALLENGE_ALGS}"`);
      return { error: 'invalid_token', error_description: 'an access token is required' };
    }
    const claims = await verifyPresentedToken(svc, req, presented, { audience, guard });
    const scopes = (claims.scope ?? '').split(' ');
    if (!scopes.includes('openid')) throw new InvalidToken('the access token was not granted openid');
    if (!isUuid(claims.sub)) throw new InvalidToken('the access token has no user');
    const user = await svc.users.get(claims.sub);
    if (!user || user.disabled) throw new InvalidToken('the user is not active');
    // OIDC Core §5.5: claims asked for by name at /authorize (carried by the code's access token)
    const requested = Array.isArray(claims.userinfo_claims) ? claims.userinfo_claims.filter((c): c is string => typeof c === 'string' && REQUESTABLE_USER_CLAIMS.includes(c)) : [];
    return { sub: user.id, ...userClaims(user, scopes, requested) };
  };
  app.get('/userinfo', { config: { renderError } }, handler);
  app.post('/userinfo', { config: { renderError } }, handler);
}

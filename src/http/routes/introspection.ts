// /introspect (RFC 7662): for authenticated confidential clients. A caller sees tokens issued to it,
// or access tokens whose audience it is registered to serve (`clients create --resource-server`;
// being allowed to request tokens for an audience, --audiences, is not serving it: RFC 7662 §4);
// everything else — expired, revoked, denylisted, foreign, malformed, or not the caller's to see —
// is simply `{"active": false}`.
import type { FastifyInstance } from 'fastify';
import { InvalidClient, InvalidRequest } from '../../core/errors.js';
import { verifyAccessToken } from '../../tokens/access-token.js';
import { findRefreshToken } from '../../tokens/refresh-tokens.js';
import { isUuid } from '../../store/users.js';
import type { Client } from '../../core/model.js';
import { authenticateClient, singleParams, type FormParams } from '../client-authentication.js';
import { FormBody } from '../schemas/form.js';
import type { AccessTokenGuard } from './userinfo.js';
import type { Services } from '../services.js';

const INACTIVE = { active: false } as const;

function maySee(caller: Client, clientId: string, aud: string | string[]): boolean {
  if (clientId === caller.clientId) return true;
  const auds = Array.isArray(aud) ? aud : [aud];
  return auds.some((a) => caller.resourceServers.includes(a));
}

export function registerIntrospection(app: FastifyInstance, svc: Services, guard: AccessTokenGuard): void {
  app.post('/introspect', { schema: { body: FormBody } }, async (req, reply) => {
    reply.header('cache-control', 'no-store');
    const params = singleParams((req.body ?? {}) as FormParams);
    const caller = await authenticateClient(svc, req, params);
    if (caller.isPublic) throw new InvalidClient('introspection is for confidential clients');
    const token = params.token;
    if (!token) throw new InvalidRequest('token is missing');

    if (token.split('.').length === 3) {
      let claims;
      try {
        ({ claims } = await verifyAccessToken(svc.rt, token));
        await guard.assertNotRevoked(claims);
      } catch {
        return INACTIVE;
      }
      if (!maySee(caller, claims.client_id, claims.aud)) return INACTIVE;
      // a deleted client's tokens die with it (its client_credentials tokens belong to no family)
      if (claims.client_id !== caller.clientId && !(await svc.clients.get(claims.client_id))) return INACTIVE;
      if (claims.sub !== claims.client_id) {
        const user = isUuid(claims.sub) ? await svc.users.get(claims.sub) : undefined;
        if (!user || user.disabled) return INACTIVE;
      }
      return {
        active: true,
        // RFC 9449 §6.2: a DPoP-bound token's key, for the resource server to check the proof against
        token_type: claims.cnf?.jkt ? 'DPoP' : 'Bearer',
        scope: claims.scope ?? '',
        client_id: claims.client_id,
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        exp: claims.exp,
        iat: claims.iat,
        jti: claims.jti,
        ...(claims.auth_time !== undefined ? { auth_time: claims.auth_time } : {}),
        ...(claims.cnf?.jkt ? { cnf: { jkt: claims.cnf.jkt } } : {}),
      };
    }

    if (token.length > 200) return INACTIVE;
    const now = svc.now();
    const found = await findRefreshToken(svc.rt.db, svc.rt.refreshSecret, token);
    if (!found || found.clientId !== caller.clientId) return INACTIVE;
    if (!found.current || found.revokedAt || found.userDisabled) return INACTIVE;
    const exp = Math.min(found.idleExpiresAt.getTime(), found.absoluteExpiresAt.getTime());
    if (exp <= now.getTime()) return INACTIVE;
    return {
      active: true,
      token_type: 'refresh_token',
      scope: found.scopes.join(' '),
      client_id: found.clientId,
      sub: found.userId,
      iss: svc.config.issuer,
      exp: Math.floor(exp / 1000),
      iat: Math.floor(found.issuedAt.getTime() / 1000),
    };
  });
}

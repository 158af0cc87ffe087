// grant_type=client_credentials (RFC 6749 §4.4): confidential clients only; `sub` is the client.
import { InvalidScope, UnauthorizedClient } from '../core/errors.js';
import { USER_SCOPES, parseScope } from '../core/vocabulary.js';
import { resolveAudience } from '../protocol/audience.js';
import { signAccessToken } from '../tokens/access-token.js';
import type { Grant } from './types.js';


export const clientCredentialsGrant: Grant = {
  grantType: 'client_credentials',
  async handle(ctx) {
    const { rt, client, params } = ctx;
    if (client.isPublic) throw new UnauthorizedClient('public clients cannot use client_credentials');
    const machineScopes = client.scopes.filter((s) => !USER_SCOPES.has(s));
    const requested = parseScope(params.scope);
    if (!requested) throw new InvalidScope('scope is malformed');
    const scopes = requested.length ? requested : machineScopes;
    const bad = scopes.filter((s) => !machineScopes.includes(s));
    if (bad.length) throw new InvalidScope(`scope not allowed for this client: ${bad.join(' ')}`);
    const aud = resolveAudience(client, ctx.resources, undefined, false, rt.config.issuer);
    // one status index per client: revoking one of its tokens (or deleting it) revokes them all in the status lists
    const at = await signAccessToken(rt, { sub: client.clientId, clientId: client.clientId, scope: scopes, aud, statusIdx: client.ccStatusIdx, jkt: ctx.dpop?.jkt });
    return { access_token: at.token, token_type: ctx.dpop ? 'DPoP' : 'Bearer', expires_in: rt.config.accessTokenTtl, scope: scopes.join(' ') };
  },
};

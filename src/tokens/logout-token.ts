// OIDC Back-Channel Logout 1.0 §2.4: the logout token. Signed at delivery time with the client's
// ID token algorithm (a retry gets a fresh iat/exp, the same jti); never a nonce (§2.4 forbids it,
// so that a logout token can never pass for an ID token).
import type { SigningAlg } from '../core/config.js';
import { epochSeconds } from '../core/clock.js';
import type { TokenDeps } from './access-token.js';
import { signJwt } from '../core/crypto.js';

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** §2.4 recommends at most two minutes. */
export const LOGOUT_TOKEN_TTL_SECONDS = 120;

export interface LogoutTokenInput {
  clientId: string;
  alg: SigningAlg;
  jti: string;
  sub?: string | null;
  sid?: string | null;
}

export function signLogoutToken(deps: TokenDeps, input: LogoutTokenInput): Promise<string> {
  const key = deps.keystore.signingKey(input.alg);
  const iat = epochSeconds(deps.clock);
  const claims: Record<string, unknown> = {
    iss: deps.config.issuer,
    aud: input.clientId,
    iat,
    exp: iat + LOGOUT_TOKEN_TTL_SECONDS,
    jti: input.jti,
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
  };
  if (input.sub) claims.sub = input.sub;
  if (input.sid) claims.sid = input.sid;
  return signJwt(claims, { alg: key.alg, kid: key.kid, typ: 'logout+jwt' }, key.privateKey);
}

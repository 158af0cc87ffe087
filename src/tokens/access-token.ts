// RFC 9068 JWT access tokens: signed with the active key of the configured algorithm, verified
// against our own published keys only, with pinned algorithms and `typ: at+jwt`.
import { errors as joseErrors, jwtVerify, type JWTPayload, type JWTHeaderParameters } from 'jose';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { Keystore } from '../keys/keystore.js';
import { InvalidToken } from '../core/errors.js';
import { randomToken, signJwt } from '../core/crypto.js';
export { signJwt };
import { statusClaim } from './status-list.js';

export interface AccessTokenInput {
  sub: string;
  clientId: string;
  scope: string[];
  aud: string[];
  authTime?: number;
  /** Login session id (OIDC `sid`), when the token comes from a user's login. */
  sid?: string;
  /** The refresh-token family the token belongs to (for revocation), when any. */
  familyId?: string;
  /** The issue time, when the caller recorded the token's expiry (iat + ACCESS_TOKEN_TTL) before signing. */
  iat?: number;
  /** The token's status-list index (its family's, or its client's for client_credentials). */
  statusIdx: number | string;
  /** User claims asked for by name for /userinfo (OIDC Core §5.5 `claims`). */
  userinfoClaims?: string[];
  /** RFC 9449 §6: the DPoP proof key's thumbprint the token is bound to (cnf.jkt). */
  jkt?: string;
}

export interface IssuedAccessToken {
  token: string;
  jti: string;
  exp: number;
  iat: number;
  kid: string;
}

export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  auth_time?: number;
  sid?: string;
  fid?: string;
  status?: { status_list: { idx: number; uri: string } };
  userinfo_claims?: string[];
  cnf?: { jkt?: string };
}

export interface TokenDeps {
  config: Config;
  keystore: Keystore;
  clock: Clock;
}

export const newJti = (): string => randomToken(16);

export async function signAccessToken(deps: TokenDeps, input: AccessTokenInput): Promise<IssuedAccessToken> {
  const { config, keystore, clock } = deps;
  const key = keystore.signingKey(config.signingAlg);
  const iat = input.iat ?? Math.floor(clock.now() / 1000);
  const exp = iat + config.accessTokenTtl;
  const jti = newJti();
  const claims: Record<string, unknown> = {
    iss: config.issuer,
    sub: input.sub,
    aud: input.aud.length === 1 ? input.aud[0]! : input.aud,
    exp,
    iat,
    jti,
    client_id: input.clientId,
    scope: input.scope.join(' '),
  };
  if (input.authTime !== undefined) claims.auth_time = input.authTime;
  if (input.sid) claims.sid = input.sid;
  if (input.familyId) claims.fid = input.familyId;
  claims.status = statusClaim(config.issuer, input.statusIdx);
  if (input.userinfoClaims?.length) claims.userinfo_claims = input.userinfoClaims;
  if (input.jkt) claims.cnf = { jkt: input.jkt };
  const token = await signJwt(claims, { alg: key.alg, kid: key.kid, typ: 'at+jwt' }, key.privateKey);
  return { token, jti, exp, iat, kid: key.kid };
}

/**
 * Verify one of our access tokens. The key comes from our keystore by kid (a revoked or unknown
 * kid fails); the algorithm must be one we sign with and match the key's own; `typ` must be
 * at+jwt, so an ID token is never accepted as an access token.
 */
// Tokens already verified once (signature, issuer, typ) are remembered until they expire, so a
// resource server calling /userinfo or /introspect with the same token does not pay for ECDSA
// verification again. A hit still re-checks expiry, audience and that the signing key is still
// published (a revoked key's tokens fail at once).
const VERIFIED_MAX = 10_000;
const verified = new Map<string, { claims: AccessTokenClaims; header: JWTHeaderParameters }>();

function fromCache(deps: TokenDeps, token: string, audience: string | undefined) {
  const hit = verified.get(token);
  if (!hit) return undefined;
  const now = deps.clock.now() / 1000;
  const key = hit.header.kid ? deps.keystore.verificationKey(hit.header.kid) : undefined;
  if (!key || key.alg !== hit.header.alg || hit.claims.exp + deps.config.clockLeewaySeconds <= now || hit.claims.iss !== deps.config.issuer) {
    verified.delete(token);
    return undefined;
  }
  if (hit.claims.iat - deps.config.clockLeewaySeconds > now) return undefined;
  if (audience !== undefined) {
    const aud = Array.isArray(hit.claims.aud) ? hit.claims.aud : [hit.claims.aud];
    if (!aud.includes(audience)) throw new InvalidToken('the access token is not valid here (aud)');
  }
  return hit;
}

export async function verifyAccessToken(
  deps: TokenDeps,
  token: string,
  opts: { audience?: string } = {},
): Promise<{ claims: AccessTokenClaims; header: JWTHeaderParameters }> {
  if (typeof token !== 'string' || token.length > 8192 || token.split('.').length !== 3) throw new InvalidToken('malformed access token');
  const cached = fromCache(deps, token, opts.audience);
  if (cached) return cached;
  const result = await verifyUncached(deps, token, opts);
  if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value!);
  verified.set(token, result);
  return result;
}

async function verifyUncached(
  deps: TokenDeps,
  token: string,
  opts: { audience?: string },
): Promise<{ claims: AccessTokenClaims; header: JWTHeaderParameters }> {
  const { config, keystore, clock } = deps;
  try {
    const { payload, protectedHeader } = await jwtVerify(
      token,
      (header) => {
        const key = header.kid ? keystore.verificationKey(header.kid) : undefined;
        if (!key || key.alg !== header.alg) throw new InvalidToken('unknown signing key');
        return key.publicKey;
      },
      {
        issuer: config.issuer,
        algorithms: [...config.enabledAlgs, ...keystore.list().map((k) => k.alg)].filter((v, i, a) => a.indexOf(v) === i),
        typ: 'at+jwt',
        clockTolerance: config.clockLeewaySeconds,
        currentDate: new Date(clock.now()),
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
        ...(opts.audience ? { audience: opts.audience } : {}),
      },
    );
    return { claims: payload as AccessTokenClaims, header: protectedHeader };
  } catch (err) {
    if (err instanceof InvalidToken) throw err;
    if (err instanceof joseErrors.JWTExpired) throw new InvalidToken('the access token has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed) throw new InvalidToken(`the access token is not valid here (${err.claim})`);
    throw new InvalidToken('the access token is invalid');
  }
}

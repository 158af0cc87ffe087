// ID tokens (OIDC Core §2): signed with the client's id_token_signed_response_alg (RS256 unless
// the client registered another).
import crypto from 'node:crypto';
import { compactVerify, decodeJwt } from 'jose';
import type { SigningAlg } from '../core/config.js';
import type { User } from '../db/types.js';
import { ACR_PASSWORD, AMR_PASSWORD } from '../core/acr.js';
import type { TokenDeps } from './access-token.js';
import { signJwt } from '../core/crypto.js';

/** OIDC Core §3.1.3.6: left half of the hash of the access token (SHA-512 for Ed25519). */
export function atHash(accessToken: string, alg: string): string {
  const hash = alg === 'EdDSA' ? 'sha512' : 'sha256';
  const d = crypto.hash(hash, accessToken, 'buffer') as unknown as Buffer;
  return d.subarray(0, d.length / 2).toString('base64url');
}

/** The user's claims released by the scopes, plus those asked for by name (OIDC Core §5.5). */
export function userClaims(user: User, scopes: readonly string[], requested: readonly string[] = []): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  if (scopes.includes('profile') || requested.includes('name')) claims.name = user.name ?? undefined;
  if (scopes.includes('email') || requested.includes('email')) claims.email = user.email;
  if (scopes.includes('email') || requested.includes('email_verified')) claims.email_verified = user.email_verified;
  return Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
}

export interface IdTokenInput {
  clientId: string;
  alg: SigningAlg;
  user: User;
  scopes: string[];
  authTime: number;
  nonce?: string | null;
  sid?: string | null;
  accessToken: string;
  /** User claims asked for by name for the ID token (the `claims` request parameter). */
  requestedClaims?: string[];
}

export async function signIdToken(deps: TokenDeps, input: IdTokenInput): Promise<string> {
  const { config, keystore, clock } = deps;
  const key = keystore.signingKey(input.alg);
  const iat = Math.floor(clock.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: config.issuer,
    sub: input.user.id,
    aud: input.clientId,
    exp: iat + config.idTokenTtl,
    iat,
    auth_time: input.authTime,
    azp: input.clientId,
    at_hash: atHash(input.accessToken, key.alg),
    // one way to log in today: a password (src/protocol/acr.ts)
    acr: ACR_PASSWORD,
    amr: AMR_PASSWORD,
    ...userClaims(input.user, input.scopes, input.requestedClaims),
  };
  if (input.nonce) claims.nonce = input.nonce;
  if (input.sid) claims.sid = input.sid;
  return signJwt(claims, { alg: key.alg, kid: key.kid, typ: 'JWT' }, key.privateKey);
}

export interface IdTokenHint {
  sub: string;
  aud: string[];
  sid?: string;
  exp?: number;
}

/**
 * An `id_token_hint` (OIDC Core §3.1.2.1): an ID token we issued, so signed by one of our keys
 * (chosen by kid from our keystore only; the algorithm pinned to that key's), with our `iss`.
 * An expired one is still a valid hint. Undefined when it is not one.
 */
export async function verifyIdTokenHint(deps: Pick<TokenDeps, 'config' | 'keystore'>, hint: string): Promise<IdTokenHint | undefined> {
  if (hint.length > 8192) return undefined;
  try {
    const { protectedHeader } = await compactVerify(
      hint,
      (h) => {
        const k = h.kid ? deps.keystore.verificationKey(h.kid) : undefined;
        if (!k || k.alg !== h.alg) throw new Error('unknown key');
        return k.publicKey;
      },
      { algorithms: [...new Set(deps.keystore.list().map((k) => k.alg))] },
    );
    // an access token (at+jwt), a logout token (logout+jwt) or a status list is not an ID token
    if (protectedHeader.typ !== undefined && protectedHeader.typ !== 'JWT') return undefined;
    const claims = decodeJwt(hint);
    // Back-Channel Logout 1.0 §2.4: a logout token carries `events`, an ID token never does
    if (claims.events !== undefined) return undefined;
    if (claims.iss !== deps.config.issuer || typeof claims.sub !== 'string' || claims.aud === undefined) return undefined;
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (aud.length === 0 || !aud.every((a) => typeof a === 'string')) return undefined;
    return { sub: claims.sub, aud, ...(typeof claims.sid === 'string' ? { sid: claims.sid } : {}), ...(typeof claims.exp === 'number' ? { exp: claims.exp } : {}) };
  } catch {
    return undefined;
  }
}

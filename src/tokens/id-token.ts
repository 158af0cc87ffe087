// ID tokens (OIDC Core §2): signed with the client's id_token_signed_response_alg (RS256 unless
// the client registered another).
import crypto from 'node:crypto';
import type { SigningAlg } from '../config.js';
import type { User } from '../db/types.js';
import { signJwt, type TokenDeps } from './access-token.js';

/** OIDC Core §3.1.3.6: left half of the hash of the access token (SHA-512 for Ed25519). */
export function atHash(accessToken: string, alg: string): string {
  const hash = alg === 'EdDSA' ? 'sha512' : 'sha256';
  const d = crypto.hash(hash, accessToken, 'buffer') as unknown as Buffer;
  return d.subarray(0, d.length / 2).toString('base64url');
}

export function userClaims(user: User, scopes: readonly string[]): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  if (scopes.includes('profile')) claims.name = user.name ?? undefined;
  if (scopes.includes('email')) {
    claims.email = user.email;
    claims.email_verified = user.email_verified;
  }
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
    ...userClaims(input.user, input.scopes),
  };
  if (input.nonce) claims.nonce = input.nonce;
  if (input.sid) claims.sid = input.sid;
  return signJwt(claims, { alg: key.alg, kid: key.kid, typ: 'JWT' }, key.privateKey);
}

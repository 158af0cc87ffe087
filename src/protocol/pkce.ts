// PKCE (RFC 7636) with S256 only; `plain` is refused (RFC 9700 §2.1.1).
import crypto from 'node:crypto';

const CHALLENGE_RE = /^[A-Za-z0-9\-._~]{43,128}$/;

export const isValidChallenge = (c: string): boolean => CHALLENGE_RE.test(c);
export const isValidVerifier = (v: string): boolean => CHALLENGE_RE.test(v);

export function s256(verifier: string): string {
  return crypto.createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

export function verifierMatches(verifier: string, challenge: string): boolean {
  if (!isValidVerifier(verifier)) return false;
  const a = Buffer.from(s256(verifier));
  const b = Buffer.from(challenge);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

// Opaque tokens (codes, refresh tokens, session ids, client secrets): 256 bits from the CSPRNG,
// stored only as SHA-256 digests, compared in constant time.
import crypto from 'node:crypto';

export function randomToken(bytes = 32): string {
  return crypto.randomBytes(bytes).toString('base64url');
}

export function digest(value: string): string {
  return crypto.createHash('sha256').update(value, 'utf8').digest('base64url');
}

/** Constant-time comparison of a presented secret against a stored digest. */
export function matchesDigest(presented: string, storedDigest: string): boolean {
  const a = Buffer.from(digest(presented), 'base64url');
  const b = Buffer.from(storedDigest, 'base64url');
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

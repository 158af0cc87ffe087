// Opaque tokens (codes, refresh tokens, session ids, client secrets): 256 bits from the CSPRNG,
// stored only as SHA-256 digests, compared in constant time.
import crypto from 'node:crypto';
import { CompactSign } from 'jose';

// One call into the CSPRNG per 8 KiB instead of one per token: a small randomBytes() costs about
// 15 µs on a busy event loop (the RNG is shared with the crypto threads), which showed in every
// token request's profile. Every byte is handed out once, then the pool is refilled.
const POOL_SIZE = 8192;
const pool = Buffer.alloc(POOL_SIZE);
let poolOffset = POOL_SIZE;

/** `bytes` fresh bytes from the CSPRNG (a copy: the pool is overwritten when refilled). */
export function randomBytes(bytes: number): Buffer {
  if (bytes > POOL_SIZE / 4) return crypto.randomBytes(bytes);
  if (poolOffset + bytes > POOL_SIZE) {
    crypto.randomFillSync(pool);
    poolOffset = 0;
  }
  const out = Buffer.from(pool.subarray(poolOffset, poolOffset + bytes));
  pool.fill(0, poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return out;
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

// crypto.hash (one-shot) costs a third of createHash().update().digest() for short inputs
export function digest(value: string): string {
  return crypto.hash('sha256', value, 'base64url');
}

/** Constant-time comparison of a presented secret against a stored digest. */
export function matchesDigest(presented: string, storedDigest: string): boolean {
  const a = crypto.hash('sha256', presented, 'buffer') as unknown as Buffer;
  const b = Buffer.from(storedDigest, 'base64url');
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

const utf8 = new TextEncoder();

/**
 * A JWT is a JWS whose payload is the JSON claims set: jose's CompactSign signs it. (jose's SignJWT
 * builder re-validates every claim we have just set, which cost about 15% of a token's CPU; the
 * claims here are built from typed inputs.)
 */
export function signJwt(claims: Record<string, unknown>, header: { alg: string; kid: string; typ: string }, key: Parameters<CompactSign['sign']>[0]): Promise<string> {
  return new CompactSign(utf8.encode(JSON.stringify(claims))).setProtectedHeader(header).sign(key);
}

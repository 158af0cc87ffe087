// Refresh tokens are sealed, not stored: the token names its family and its generation, encrypted
// and authenticated with AES-256-GCM under a server secret of its own (the `refresh-token` secret,
// sealed under the KEK in server_secrets, shared by every replica). The family row carries its
// current generation, so a rotation is one UPDATE of that row (generation + 1) and a token of an
// older generation is a reuse (RFC 9700 §4.14.2). Nothing a database dump holds opens a token:
// the tokens themselves are nowhere, and their key is sealed under the KEK.
//
// Same construction as the authorization codes (src/tokens/codes.ts), with its own secret and
// associated data: base64url(salt ‖ iv ‖ ciphertext ‖ tag); the 128-bit random salt picks a key of
// its own (HMAC-SHA256 of the salt under the secret), so the GCM limit on random IVs per key never
// applies; the version and purpose are the associated data; a string that does not re-encode to
// itself is refused, so a token has exactly one spelling. The plaintext is fixed-size binary:
// family id (16 bytes, a UUID), generation (uint32), issue time (ms since the epoch, uint64).
import { isUuid } from '../core/vocabulary.js';
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import { findRefreshTokenFamily, type PresentedRefreshToken } from '../store/refresh-families.js';
import { randomBytes } from '../core/crypto.js';

const AAD = Buffer.from('latchkey:refresh-token:v1', 'utf8');
const SALT = 16;
const IV = 12;
const TAG = 16;
const PLAIN = 16 + 4 + 8;
/** The length of every sealed refresh token (the grant refuses anything over 200 characters). */
export const SEALED_REFRESH_TOKEN_LENGTH = Math.ceil(((SALT + IV + PLAIN + TAG) * 4) / 3);
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface RefreshTokenClaims {
  familyId: string;
  generation: number;
  /** When this token was issued. */
  issuedAt: Date;
}

const tokenKey = (secret: Buffer, salt: Buffer): Buffer => crypto.createHmac('sha256', secret).update(salt).digest();

/** Seal the refresh token of `familyId` at `generation`, issued at `at`. */
export function sealRefreshToken(secret: Buffer, familyId: string, generation: number, at: Date): string {
  if (!isUuid(familyId)) throw new TypeError('a family id is a UUID');
  if (!Number.isInteger(generation) || generation < 0 || generation > 0xffffffff) throw new RangeError('generation out of range');
  const plain = Buffer.alloc(PLAIN);
  Buffer.from(familyId.replaceAll('-', ''), 'hex').copy(plain, 0);
  plain.writeUInt32BE(generation, 16);
  plain.writeBigUInt64BE(BigInt(at.getTime()), 20);
  const salt = randomBytes(SALT);
  const iv = randomBytes(IV);
  const cipher = crypto.createCipheriv('aes-256-gcm', tokenKey(secret, salt), iv);
  cipher.setAAD(AAD);
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([salt, iv, ct, cipher.getAuthTag()]).toString('base64url');
}

/** Does `token` have the shape of a sealed token? (Whether it opens is another matter.) */
export const looksSealed = (token: string): boolean => token.length === SEALED_REFRESH_TOKEN_LENGTH;

/** Open a refresh token; undefined for anything we did not seal (forged, altered, truncated, a pre-sealing token). */
export function openRefreshToken(secret: Buffer, token: string): RefreshTokenClaims | undefined {
  if (token.length !== SEALED_REFRESH_TOKEN_LENGTH || !BASE64URL.test(token)) return undefined;
  const raw = Buffer.from(token, 'base64url');
  // one spelling per token: Buffer's decoder ignores stray trailing bits
  if (raw.length !== SALT + IV + PLAIN + TAG || raw.toString('base64url') !== token) return undefined;
  let plain: Buffer;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', tokenKey(secret, raw.subarray(0, SALT)), raw.subarray(SALT, SALT + IV));
    decipher.setAAD(AAD);
    decipher.setAuthTag(raw.subarray(raw.length - TAG));
    plain = Buffer.concat([decipher.update(raw.subarray(SALT + IV, raw.length - TAG)), decipher.final()]);
  } catch {
    return undefined;
  }
  const hex = plain.toString('hex', 0, 16);
  const familyId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { familyId, generation: plain.readUInt32BE(16), issuedAt: new Date(Number(plain.readBigUInt64BE(20))) };
}

/**
 * The family a presented refresh token belongs to (for /revoke and /introspect), or undefined when
 * it is none of ours: a sealed token names its family, a token from before the sealing is found by
 * its digest. A string of the sealed length that does not open is looked up nowhere.
 */
export async function findRefreshToken(db: Kysely<Database>, secret: Buffer, token: string): Promise<PresentedRefreshToken | undefined> {
  const sealed = openRefreshToken(secret, token);
  if (!sealed && looksSealed(token)) return undefined;
  return findRefreshTokenFamily(db, sealed, token);
}

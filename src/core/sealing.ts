// State the server hands to the browser instead of storing it (a pending interaction): JSON
// encrypted and authenticated with AES-256-GCM under a key of its own per value (HMAC-SHA256 of a
// random salt under the shared server secret, as for the sealed codes in ./codes.ts), the purpose
// bound as associated data so a value sealed for one purpose never opens as another.
import crypto from 'node:crypto';
import { randomBytes } from './crypto.js';

const BASE64URL = /^[A-Za-z0-9_-]+$/;

const keyFor = (secret: Buffer, purpose: string, salt: Buffer): Buffer => crypto.createHmac('sha256', secret).update(`${purpose}\0`).update(salt).digest();

export function seal(secret: Buffer, purpose: string, payload: unknown): string {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', keyFor(secret, purpose, salt), iv);
  cipher.setAAD(Buffer.from(`latchkey:${purpose}:v1`, 'utf8'));
  const ct = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return Buffer.concat([salt, iv, ct, cipher.getAuthTag()]).toString('base64url');
}

/** The payload, or undefined for anything we did not seal for this purpose (forged, altered, truncated). */
export function unseal<T>(secret: Buffer, purpose: string, value: string, maxLength: number): T | undefined {
  if (typeof value !== 'string' || value.length < 60 || value.length > maxLength || !BASE64URL.test(value)) return undefined;
  const raw = Buffer.from(value, 'base64url');
  if (raw.toString('base64url') !== value) return undefined;
  const salt = raw.subarray(0, 16);
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', keyFor(secret, purpose, salt), raw.subarray(16, 28));
    decipher.setAAD(Buffer.from(`latchkey:${purpose}:v1`, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return JSON.parse(Buffer.concat([decipher.update(raw.subarray(28, raw.length - 16)), decipher.final()]).toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

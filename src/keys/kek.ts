// The key-encryption key (KEK) seals private signing keys and server secrets at rest with
// AES-256-GCM; the associated data (a key's kid, a secret's name) binds each ciphertext to its row.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/config.js';

export interface Kek {
  /** Stable, non-secret id of this KEK (stored with every sealed row). */
  id: string;
  key: Buffer;
}

export function kekFromBytes(key: Buffer): Kek {
  if (key.length !== 32) throw new Error('a KEK is exactly 32 bytes');
  const id = crypto.createHash('sha256').update('latchkey-kek-id\0').update(key).digest('base64url').slice(0, 16);
  return { id, key };
}

export function generateKekBase64(): string {
  return crypto.randomBytes(32).toString('base64');
}

function parseKek(text: string, variable: string): Kek {
  const bytes = Buffer.from(text.trim(), 'base64');
  if (bytes.length !== 32) throw new ConfigError(variable, 'must hold base64 of exactly 32 bytes (run `latchkey kek generate`)');
  return kekFromBytes(bytes);
}

export interface KekSource {
  kek: string | undefined;
  kekFile: string | undefined;
  embedded: boolean;
}

/**
 * LATCHKEY_KEK, else LATCHKEY_KEK_FILE, else (embedded database only) the file keys/kek,
 * created on first start with O_EXCL and mode 0600. With postgres:// a KEK is never generated,
 * so that replicas cannot diverge.
 */
/** The embedded default's KEK file: keys/kek under the working directory. */
export function defaultKekFile(): string {
  return path.resolve('keys/kek');
}

/** Where the KEK comes from, for error messages (never the KEK itself). */
export function describeKekSource(src: Omit<KekSource, 'embedded'>): string {
  if (src.kek) return 'the KEK in LATCHKEY_KEK';
  if (src.kekFile) return `the KEK in LATCHKEY_KEK_FILE (${src.kekFile})`;
  return `the KEK file ${defaultKekFile()}`;
}

export function loadKek(src: KekSource, defaultFile = defaultKekFile()): Kek {
  if (src.kek) return parseKek(src.kek, 'LATCHKEY_KEK');
  if (src.kekFile) {
    let text: string;
    try {
      text = fs.readFileSync(src.kekFile, 'utf8');
    } catch (err) {
      throw new ConfigError('LATCHKEY_KEK_FILE', `cannot read ${src.kekFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    return parseKek(text, 'LATCHKEY_KEK_FILE');
  }
  if (!src.embedded) {
    throw new ConfigError('LATCHKEY_KEK', 'is required with a postgres:// DATABASE_URL (or set LATCHKEY_KEK_FILE); generate one with `latchkey kek generate`');
  }
  fs.mkdirSync(path.dirname(defaultFile), { recursive: true, mode: 0o700 });
  try {
    const fd = fs.openSync(defaultFile, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
    fs.writeSync(fd, `${generateKekBase64()}\n`);
    fs.closeSync(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return parseKek(fs.readFileSync(defaultFile, 'utf8'), `KEK file ${defaultFile}`);
}

const VERSION = 'v1';

export function seal(kek: Kek, plaintext: Buffer | string, aad: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', kek.key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext), cipher.final()]);
  return [VERSION, iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

export class KekMismatch extends Error {}

export function open(kek: Kek, sealed: string, aad: string): Buffer {
  const [v, iv, ct, tag] = sealed.split('.');
  if (v !== VERSION || !iv || ct === undefined || !tag) throw new KekMismatch('sealed value has an unknown format');
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', kek.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]);
  } catch {
    throw new KekMismatch('the KEK cannot decrypt a stored key (wrong LATCHKEY_KEK?)');
  }
}

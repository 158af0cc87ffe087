// Authorization codes are sealed, not stored: the code is the grant itself (client, user, redirect
// URI digest, PKCE challenge, scopes, resources, nonce, auth time, login session, expiry and a
// random 128-bit id), encrypted and authenticated with AES-256-GCM under a server secret that
// every replica shares (sealed under the KEK in server_secrets). /authorize therefore writes
// nothing. Single use is enforced by the database at redemption: the family a redemption creates
// records the code's id in a UNIQUE column, so a second redemption finds it taken and revokes what
// the first issued (RFC 6749 §4.1.2). Logout, a disabled user or a deleted client are checked
// at redemption against the database, as before.
//
// The format is opaque to clients: base64url(salt ‖ iv ‖ ciphertext ‖ tag). The 128-bit random salt
// is the code's id and picks a key of its own (HMAC-SHA256 of the salt under the server secret),
// so the GCM limit of 2^32 random IVs per key never applies however many codes are issued; the
// IV is random too, and the version and purpose are bound as associated data. A string that does
// not re-encode to itself is refused, so a code has exactly one spelling.
import crypto from 'node:crypto';
import { digest, randomBytes } from '../core/crypto.js';

const AAD = Buffer.from('latchkey:authorization-code:v1', 'utf8');
/** The longest code we hand out (the /token form field allows 8192 characters). */
export const MAX_CODE_LENGTH = 6000;

export interface CodeGrant {
  clientId: string;
  userId: string;
  redirectUri: string;
  codeChallenge: string | null;
  scopes: string[];
  resources: string[];
  nonce: string | null;
  authTime: Date;
  sessionSid: string | null;
  /** User claims asked for by name for the ID token (OIDC Core §5.5 `claims`). */
  idTokenClaims?: string[];
  /** User claims asked for by name for /userinfo. */
  userinfoClaims?: string[];
  /** RFC 9449 §10: the DPoP key the code is bound to. */
  dpopJkt?: string;
}

export interface OpenedCode extends Omit<CodeGrant, 'redirectUri'> {
  /** The single-use key: the digest of the code's random salt (stored on the family it creates). */
  codeDigest: string;
  /** SHA-256 of the redirect URI of the authorization request. */
  redirectUriDigest: string;
  expiresAt: Date;
}

interface Sealed {
  v: 1;
  c: string;
  u: string;
  r: string;
  pk: string | null;
  s: string[];
  res: string[];
  n: string | null;
  at: number;
  sid: string | null;
  exp: number;
  ic?: string[];
  uc?: string[];
  jkt?: string;
}

export class CodeTooLarge extends Error {
  override name = 'CodeTooLarge';
}

/** Seal a code for `grant`, valid for `ttl` seconds from `at`. */
export function sealCode(key: Buffer, grant: CodeGrant, at: Date, ttl: number): string {
  const payload: Sealed = {
    v: 1,
    c: grant.clientId,
    u: grant.userId,
    r: digest(grant.redirectUri),
    pk: grant.codeChallenge,
    s: grant.scopes,
    res: grant.resources,
    n: grant.nonce,
    at: grant.authTime.getTime(),
    sid: grant.sessionSid,
    exp: at.getTime() + ttl * 1000,
  };
  if (grant.idTokenClaims?.length) payload.ic = grant.idTokenClaims;
  if (grant.userinfoClaims?.length) payload.uc = grant.userinfoClaims;
  if (grant.dpopJkt) payload.jkt = grant.dpopJkt;
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', codeKey(key, salt), iv);
  cipher.setAAD(AAD);
  const ct = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  const code = Buffer.concat([salt, iv, ct, cipher.getAuthTag()]).toString('base64url');
  if (code.length > MAX_CODE_LENGTH) throw new CodeTooLarge('the authorization request is too large to be sealed in a code');
  return code;
}

const codeKey = (secret: Buffer, salt: Buffer): Buffer => crypto.createHmac('sha256', secret).update(salt).digest();

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Open a code; undefined for anything that is not a code we sealed (forged, altered, truncated). */
export function openCode(key: Buffer, code: string): OpenedCode | undefined {
  if (code.length < 60 || code.length > MAX_CODE_LENGTH || !BASE64URL.test(code)) return undefined;
  const raw = Buffer.from(code, 'base64url');
  // one spelling per code: Buffer's decoder ignores stray trailing bits
  if (raw.toString('base64url') !== code) return undefined;
  const salt = raw.subarray(0, 16);
  let payload: Sealed;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', codeKey(key, salt), raw.subarray(16, 28));
    decipher.setAAD(AAD);
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    payload = JSON.parse(Buffer.concat([decipher.update(raw.subarray(28, raw.length - 16)), decipher.final()]).toString('utf8')) as Sealed;
  } catch {
    return undefined;
  }
  if (payload.v !== 1) return undefined;
  return {
    codeDigest: digest(`code:${salt.toString('base64url')}`),
    clientId: payload.c,
    userId: payload.u,
    redirectUriDigest: payload.r,
    codeChallenge: payload.pk,
    scopes: payload.s,
    resources: payload.res,
    nonce: payload.n,
    authTime: new Date(payload.at),
    sessionSid: payload.sid,
    idTokenClaims: payload.ic ?? [],
    userinfoClaims: payload.uc ?? [],
    ...(payload.jkt ? { dpopJkt: payload.jkt } : {}),
    expiresAt: new Date(payload.exp),
  };
}

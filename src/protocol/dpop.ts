// DPoP proofs (RFC 9449 §4.3), framework-free: one proof JWT checked against the request it came
// with. jose verifies the signature with the public key the proof carries (EmbeddedJWK refuses a
// private or symmetric key); everything the RFC adds — typ, the algorithm list, htm, htu, iat
// window, ath, nonce — is checked here. Whether the jti was seen before is the caller's question
// (src/store/dpop-proofs.ts), asked only once every other check has passed, so a bad proof writes
// nothing.
import crypto from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose';
import { InvalidDpopProof, UseDpopNonce } from '../core/errors.js';

/**
 * RFC 9449 §5.1 dpop_signing_alg_values_supported: asymmetric only. Ed25519 is RFC 9864's
 * fully-specified name for EdDSA over Ed25519, which current clients (oauth4webapi, openid-client)
 * put in proofs by default.
 */
import { DPOP_ALGS } from '../core/vocabulary.js';
export { DPOP_ALGS };
/** Seconds a proof is accepted after its iat (plus the clock leeway either side). */
export const DPOP_PROOF_WINDOW = 60;
const MAX_PROOF_LENGTH = 8192;
const MAX_JTI_LENGTH = 256;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** An RFC 7638 SHA-256 thumbprint, base64url (RFC 9449 §10 dpop_jkt, §6.1 cnf.jkt). */
export const JKT_PATTERN = /^[A-Za-z0-9_-]{43}$/;

// Proof keys already imported, by algorithm and thumbprint: a client signs every proof with the
// same key, and importing it again cost more than verifying the signature (0.63 vs 0.28 ms CPU
// measured per proof). Only keys that imported as public keys are kept; bounded, oldest out first.
const KEY_CACHE_MAX = 10_000;
const importedKeys = new Map<string, Awaited<ReturnType<typeof importJWK>>>();

async function proofKey(jwk: JWK, alg: string, jkt: string) {
  const id = `${alg}:${jkt}`;
  const hit = importedKeys.get(id);
  if (hit) return hit;
  const key = await importJWK({ ...jwk, ext: true }, alg);
  if (key instanceof Uint8Array || key.type !== 'public') throw new Error('not a public key');
  if (importedKeys.size >= KEY_CACHE_MAX) importedKeys.delete(importedKeys.keys().next().value!);
  importedKeys.set(id, key);
  return key;
}

export interface ProofRequest {
  /** The request's method (htm). */
  method: string;
  /** The endpoint's URL as the client addressed it, without query or fragment (htu). */
  url: string;
  /** Milliseconds since the epoch. */
  now: number;
  /** Seconds of clock leeway (CLOCK_LEEWAY_SECONDS). */
  leeway: number;
  /** At a resource endpoint: the access token the proof must be bound to (ath). */
  accessToken?: string;
  /** Server nonces (§8), when this endpoint requires one. */
  nonces?: { accept(nonce: string): boolean; current(): string };
  /** Errors as at a resource endpoint (401 with a DPoP challenge) rather than 400. */
  atResource?: boolean;
}

export interface VerifiedProof {
  /** The proof key's RFC 7638 SHA-256 thumbprint. */
  jkt: string;
  /** The key under which the proof's jti is recorded as used (per proof key). */
  replayKey: string;
  /** Seconds since the epoch until which the proof could still be accepted (the replay entry's life). */
  freshUntil: number;
}

/** The request's DPoP header: undefined when absent, a proof string, or an error when repeated. */
export function dpopHeader(value: string | string[] | undefined, atResource = false): string | undefined {
  if (value === undefined) return undefined;
  // node joins repeated headers with ", " (a compact JWS has no comma); an array never arrives for it, but is refused too
  if (Array.isArray(value) || value.includes(',')) throw new InvalidDpopProof('exactly one DPoP header is allowed', atResource);
  return value;
}

/** base64url(SHA-256(token)): the `ath` of a proof sent with `token` (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return crypto.createHash('sha256').update(token, 'ascii').digest('base64url');
}

/** base64url of 65537, the only RSA public exponent accepted. */
const RSA_E = 'AQAB';
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 4096;

// RSA verification costs grow with the exponent and the modulus: a proof with a huge e cost 7.5 ms
// of CPU (1 ms with e = 65537), checked before the client authenticates (issue 23). RFC 7518 §3.3
// asks for 2048 bits at least; every client library generates e = 65537.
function checkRsaKey(jwk: JWK, fail: (d: string) => never): void {
  if (jwk.e !== RSA_E) fail('the DPoP proof RSA key must have the public exponent 65537');
  // RFC 7518 §6.3.1.1: n is the unsigned big-endian modulus without leading zero octets
  const n = typeof jwk.n === 'string' && /^[A-Za-z0-9_-]+$/.test(jwk.n) ? Buffer.from(jwk.n, 'base64url') : undefined;
  const bits = n && n.length > 0 && n[0] !== 0 ? n.length * 8 - Math.clz32(n[0]!) + 24 : 0;
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) fail(`the DPoP proof RSA key must have a modulus of ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits`);
}

function withoutQuery(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const u = new URL(url);
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  return `${u.protocol}//${u.host}${u.pathname}`;
}

export async function verifyDpopProof(proof: string, req: ProofRequest): Promise<VerifiedProof> {
  const fail = (d: string): never => {
    throw new InvalidDpopProof(d, req.atResource);
  };
  if (proof.length > MAX_PROOF_LENGTH || !COMPACT_JWS.test(proof)) fail('the DPoP proof is not a compact JWT');
  let header;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    return fail('the DPoP proof header is malformed');
  }
  if (header.typ !== 'dpop+jwt') fail('the DPoP proof must have typ dpop+jwt');
  if (typeof header.alg !== 'string' || !(DPOP_ALGS as readonly string[]).includes(header.alg)) fail(`the DPoP proof algorithm must be one of ${DPOP_ALGS.join(', ')}`);
  const jwk = header.jwk as JWK | undefined;
  if (!jwk || typeof jwk !== 'object' || Array.isArray(jwk)) fail('the DPoP proof must carry its public key in jwk');
  if (PRIVATE_MEMBERS.some((m) => m in jwk!)) fail('the DPoP proof jwk must be a public key');
  if (jwk!.use !== undefined && jwk!.use !== 'sig') fail('the DPoP proof jwk must be a signing key');
  if (jwk!.alg !== undefined && jwk!.alg !== header.alg) fail('the DPoP proof jwk is for another algorithm');
  if (jwk!.kty === 'RSA') checkRsaKey(jwk!, fail);
  // the claims first, on the unverified payload: a proof for another request is refused before
  // any key is imported or signature checked (the payload's bytes are those jwtVerify verifies)
  let payload;
  try {
    payload = decodeJwt(proof);
  } catch {
    return fail('the DPoP proof payload is malformed');
  }
  const nowSec = req.now / 1000;
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > MAX_JTI_LENGTH) fail('the DPoP proof jti is malformed');
  if (payload.htm !== req.method) fail('the DPoP proof htm does not match the request method');
  const htu = typeof payload.htu === 'string' ? withoutQuery(payload.htu) : undefined;
  if (!htu || htu !== withoutQuery(req.url)) fail('the DPoP proof htu does not match the request URL');
  const iat = payload.iat;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return fail('the DPoP proof iat is malformed');
  if (iat > nowSec + req.leeway) fail('the DPoP proof was issued in the future');
  if (iat < nowSec - DPOP_PROOF_WINDOW - req.leeway) fail('the DPoP proof is too old');
  if (req.accessToken !== undefined) {
    if (typeof payload.ath !== 'string') fail('the DPoP proof must carry ath');
    const expected = Buffer.from(accessTokenHash(req.accessToken));
    const got = Buffer.from(payload.ath as string);
    if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) fail('the DPoP proof ath does not match the access token');
  }
  if (req.nonces) {
    const nonce = payload.nonce;
    if (typeof nonce !== 'string' || !req.nonces.accept(nonce)) {
      throw new UseDpopNonce(req.nonces.current(), typeof nonce === 'string' ? 'the DPoP nonce has expired' : 'the DPoP proof must carry the server nonce', req.atResource);
    }
  }
  let jkt: string;
  let key;
  try {
    // the RFC 7638 members only: what identifies the key, whatever else the client put in the jwk
    jkt = await calculateJwkThumbprint(jwk!, 'sha256');
    key = await proofKey(jwk!, header.alg!, jkt);
  } catch {
    return fail('the DPoP proof jwk is not a usable public key for its algorithm');
  }
  try {
    await jwtVerify(proof, key, {
      algorithms: [header.alg!],
      typ: 'dpop+jwt',
      requiredClaims: ['jti', 'htm', 'htu', 'iat'],
      currentDate: new Date(req.now),
      clockTolerance: req.leeway,
    });
  } catch {
    return fail('the DPoP proof signature or claims are invalid');
  }
  return {
    jkt,
    replayKey: crypto.createHash('sha256').update(`${jkt}:${payload.jti as string}`).digest('base64url'),
    freshUntil: Math.ceil(iat + DPOP_PROOF_WINDOW + req.leeway),
  };
}

/**
 * Server nonces (RFC 9449 §8) without shared state: a nonce is a time window's number and an HMAC
 * of it under a server secret every replica holds, so any replica accepts any current nonce (this
 * window, the one before and the one after, for clock skew) with no write.
 */
export class DpopNonces {
  private cached?: { window: number; nonce: string };
  constructor(
    private readonly secret: Buffer,
    private readonly periodSeconds: number,
    private readonly now: () => number,
  ) {}

  private windowAt(ms: number): number {
    return Math.floor(ms / 1000 / this.periodSeconds);
  }

  private forWindow(window: number): string {
    const w = Buffer.alloc(4);
    w.writeUInt32BE(window >>> 0);
    const mac = crypto.createHmac('sha256', this.secret).update('latchkey:dpop-nonce:v1:').update(w).digest().subarray(0, 16);
    return Buffer.concat([w, mac]).toString('base64url');
  }

  current(): string {
    const window = this.windowAt(this.now());
    if (this.cached?.window !== window) this.cached = { window, nonce: this.forWindow(window) };
    return this.cached.nonce;
  }

  accept(nonce: string): boolean {
    if (nonce.length !== 27) return false;
    const raw = Buffer.from(nonce, 'base64url');
    if (raw.length !== 20 || raw.toString('base64url') !== nonce) return false;
    const window = raw.readUInt32BE(0);
    const current = this.windowAt(this.now()) >>> 0;
    if (Math.abs(window - current) > 1) return false;
    const expected = Buffer.from(this.forWindow(window), 'base64url');
    return crypto.timingSafeEqual(raw, expected);
  }
}

// The DPoP proof that must come with a DPoP-bound access token (RFC 9449 §4.3, §7): every check is
// jose's or a comparison of its output — no JWS or JWK code of our own.
import { createHash } from 'node:crypto';
import { base64url, calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { InvalidDpopProof, type DpopProofReason } from './errors.js';

/** What a resource server knows of the request a DPoP proof came with. */
export interface DpopRequest {
  /** The `DPoP` request header(s), as node gives them (a string, or an array if repeated). */
  proof: string | string[] | undefined;
  /** The request method (`GET`, `POST`…), compared with the proof's `htm`. */
  method: string;
  /** The absolute URL the client sent the request to, compared with the proof's `htu` (query and fragment ignored). */
  url: string;
}

/**
 * Where the `jti` of accepted proofs are remembered (RFC 9449 §11.1). `seen` records `jti` until
 * `expiresAt` (ms since the epoch) and answers whether it was already there, in one atomic step —
 * e.g. Redis `SET dpop:<jkt>:<jti> 1 NX PXAT <expiresAt>` is `seen` when it does not answer `OK`.
 * `jkt` is the thumbprint of the proof's key (the token's `cnf.jkt`), for a store that keeps jti
 * per key or bounds the entries of one key.
 */
export interface ReplayStore {
  seen(jti: string, expiresAt: number, jkt: string): Promise<boolean> | boolean;
}

export interface DpopPolicy {
  algorithms: readonly string[];
  /** seconds a proof is accepted after its `iat` (plus clockTolerance) */
  maxAge: number;
  clockTolerance: number;
  now: () => number;
}

/** A proof that passed every check but the replay check: the jti to record, and until when. */
export interface CheckedProof {
  jti: string;
  expiresAt: number;
}

// RFC 7517 §9.3 / RFC 7518 §6: members that only a private or symmetric key has
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'];
const MAX_JTI_LENGTH = 256;

/** The proof checks of RFC 9449 §4.3 for `token`, bound to the key of thumbprint `jkt`. */
export async function checkDpopProof(request: DpopRequest, token: string, jkt: string, policy: DpopPolicy): Promise<CheckedProof> {
  const bad = (reason: DpopProofReason, description: string) => new InvalidDpopProof(reason, description, policy.algorithms);
  const { proof } = request;
  if (proof === undefined || proof === '' || (Array.isArray(proof) && proof.length === 0)) throw bad('dpop_missing', 'a DPoP proof is required with this token');
  // node joins repeated headers with ", "; a compact JWS has no comma (RFC 9449 §4.3: exactly one)
  if (Array.isArray(proof) ? proof.length > 1 : proof.includes(',')) throw bad('dpop_multiple', 'more than one DPoP proof');
  const jws = (Array.isArray(proof) ? proof[0]! : proof).trim();

  let header;
  try {
    header = decodeProtectedHeader(jws);
  } catch {
    throw bad('dpop_malformed', 'the DPoP proof is not a JWT');
  }
  if (jws.split('.').length !== 3) throw bad('dpop_malformed', 'the DPoP proof is not a JWT');
  if (header.typ !== 'dpop+jwt') throw bad('dpop_type', 'the DPoP proof is not of type dpop+jwt');
  if (typeof header.alg !== 'string' || !policy.algorithms.includes(header.alg)) throw bad('dpop_algorithm', 'the DPoP proof is signed with an algorithm not accepted here');
  const jwk = header.jwk as JWK | undefined;
  if (!jwk || typeof jwk !== 'object' || Array.isArray(jwk)) throw bad('dpop_key', 'the DPoP proof has no jwk header');
  if (jwk.kty === 'oct' || PRIVATE_MEMBERS.some((m) => m in jwk)) throw bad('dpop_key', 'the DPoP proof key must be a public asymmetric key');
  // RSA verification cost grows with e and n (a huge e: 7.5 ms of CPU a proof); the Latchkey server
  // accepts these only, so no token it issued is bound to another RSA key
  if (jwk.kty === 'RSA' && (jwk.e !== 'AQAB' || !rsaModulusOk(jwk.n))) throw bad('dpop_key', 'the DPoP proof RSA key must have e = 65537 and a modulus of 2048 to 4096 bits');
  // the key must be the token's before its signature is worth checking (RFC 9449 §4.3 step 12)
  let thumbprint: string;
  try {
    thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
  } catch {
    throw bad('dpop_key', 'the DPoP proof key has no thumbprint');
  }
  if (thumbprint !== jkt) throw bad('dpop_binding', 'the DPoP proof is not signed by the key the token is bound to');

  const embedded: JWTVerifyGetKey = async (h, t) => {
    try {
      return await EmbeddedJWK(h, t);
    } catch {
      throw bad('dpop_key', 'the DPoP proof key (jwk) is not a usable public key for its alg');
    }
  };
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(jws, embedded, {
      typ: 'dpop+jwt',
      algorithms: [...policy.algorithms],
      clockTolerance: policy.clockTolerance,
      currentDate: new Date(policy.now()),
      requiredClaims: ['jti', 'htm', 'htu', 'iat'],
    }));
  } catch (err) {
    if (err instanceof InvalidDpopProof) throw err;
    const e = err as { code?: string; claim?: string };
    switch (e.code) {
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        throw bad('dpop_signature', 'the DPoP proof signature is invalid');
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
        throw bad('dpop_algorithm', 'the DPoP proof is signed with an algorithm not accepted here');
      case 'ERR_JWT_EXPIRED':
        throw bad('dpop_iat', 'the DPoP proof has expired');
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
        if (e.claim === 'iat') throw bad('dpop_iat', 'the DPoP proof iat is invalid');
        throw bad('dpop_claims', `the DPoP proof's ${e.claim ?? ''} claim is missing or invalid`);
      default:
        throw bad('dpop_malformed', 'the DPoP proof is malformed');
    }
  }

  const { jti, htm, htu, iat, ath } = payload as { jti?: unknown; htm?: unknown; htu?: unknown; iat?: unknown; ath?: unknown };
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) throw bad('dpop_claims', 'the DPoP proof jti is missing or invalid');
  if (typeof htm !== 'string' || htm !== request.method) throw bad('dpop_method', 'the DPoP proof htm is not the request method');
  if (typeof htu !== 'string' || !sameUrl(htu, request.url)) throw bad('dpop_url', 'the DPoP proof htu is not the request URL');
  const now = policy.now() / 1000;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw bad('dpop_iat', 'the DPoP proof iat is invalid');
  if (iat > now + policy.clockTolerance) throw bad('dpop_iat', 'the DPoP proof iat is in the future');
  if (iat < now - policy.maxAge - policy.clockTolerance) throw bad('dpop_iat', 'the DPoP proof is too old');
  if (ath === undefined) throw bad('dpop_ath', 'the DPoP proof has no ath');
  if (typeof ath !== 'string' || ath !== base64url.encode(createHash('sha256').update(token).digest())) throw bad('dpop_ath', 'the DPoP proof ath is not the hash of this token');

  // accepted until iat + maxAge + clockTolerance: remembered that long
  return { jti, expiresAt: Math.ceil((iat + policy.maxAge + policy.clockTolerance) * 1000) };
}

/** RFC 7518 §6.3.1.1: n is the unsigned big-endian modulus without leading zero octets. */
function rsaModulusOk(n: unknown): boolean {
  if (typeof n !== 'string' || !/^[A-Za-z0-9_-]+$/.test(n)) return false;
  const bytes = Buffer.from(n, 'base64url');
  if (bytes.length === 0 || bytes[0] === 0) return false;
  const bits = bytes.length * 8 - Math.clz32(bytes[0]!) + 24;
  return bits >= 2048 && bits <= 4096;
}

/** RFC 9449 §4.3 step 9: htu and the request URL, each normalized by the URL parser, without query and fragment. */
function sameUrl(htu: string, requestUrl: string): boolean {
  const strip = (s: string) => {
    const u = new URL(s);
    u.search = '';
    u.hash = '';
    return u.href;
  };
  try {
    return strip(htu) === strip(requestUrl);
  } catch {
    return false;
  }
}

/**
 * The default replay store: one process's memory, at most `maxEntries` jti, and at most
 * `maxPerKey` of them for one proof key, each forgotten when it expires. Without the per-key bound,
 * one holder of a bound token could fill the cache with its own proofs and every other client's
 * would be refused until they expired.
 */
export class MemoryReplayStore implements ReplayStore {
  // `<jkt> <jti>` → expiry and key; a Map keeps insertion order, roughly expiry order
  readonly #entries = new Map<string, { exp: number; jkt: string }>();
  readonly #perKey = new Map<string, Map<string, number>>();
  readonly #maxEntries: number;
  readonly #maxPerKey: number;
  readonly #now: () => number;

  constructor(maxEntries: number, now: () => number, maxPerKey = maxEntries) {
    this.#maxEntries = maxEntries;
    this.#maxPerKey = maxPerKey;
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  #delete(id: string, jkt: string): void {
    this.#entries.delete(id);
    const mine = this.#perKey.get(jkt);
    if (!mine) return;
    mine.delete(id);
    if (mine.size === 0) this.#perKey.delete(jkt);
  }

  seen(jti: string, expiresAt: number, jkt = ''): boolean {
    const now = this.#now();
    // drop the expired ones from the front
    for (const [k, e] of this.#entries) {
      if (e.exp > now) break;
      this.#delete(k, e.jkt);
    }
    const id = `${jkt} ${jti}`;
    const known = this.#entries.get(id);
    if (known !== undefined && known.exp > now) return true;
    if (known !== undefined) this.#delete(id, jkt);
    if (this.#entries.size >= this.#maxEntries) {
      for (const [k, e] of this.#entries) if (e.exp <= now) this.#delete(k, e.jkt);
      // full of live proofs: forgetting one would let it be replayed, so refuse (fail closed)
      if (this.#entries.size >= this.#maxEntries) throw new ReplayCacheFull();
    }
    let mine = this.#perKey.get(jkt);
    if (mine && mine.size >= this.#maxPerKey) {
      // only this key's entries are looked at: at most maxPerKey of them
      for (const [k, exp] of mine) if (exp <= now) this.#delete(k, jkt);
      mine = this.#perKey.get(jkt);
      if (mine && mine.size >= this.#maxPerKey) throw new ReplayKeyQuota();
    }
    this.#entries.set(id, { exp: expiresAt, jkt });
    if (!mine) this.#perKey.set(jkt, (mine = new Map()));
    mine.set(id, expiresAt);
    return false;
  }
}

export class ReplayCacheFull extends Error {
  constructor() {
    super('the DPoP replay cache is full');
    this.name = 'ReplayCacheFull';
  }
}

/** One proof key holds its whole share of the replay cache (`dpopReplayEntriesPerKey` live proofs). */
export class ReplayKeyQuota extends Error {
  constructor() {
    super('this DPoP key has used its share of the replay cache');
    this.name = 'ReplayKeyQuota';
  }
}

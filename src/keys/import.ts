// `keys import`: bring your own private signing key (PEM or JWK). It enters as the `next` key of
// its algorithm and, like any next key, signs only after it has been published long enough.
import crypto from 'node:crypto';
import { calculateJwkThumbprint, CompactSign, compactVerify, importJWK, type JWK } from 'jose';
import type { SigningAlg } from '../core/config.js';
import { deleteNextKeys, findSigningKeyState } from '../store/signing-keys.js';
import { assertKeysSealedBy, insertKey, keyTiming, lockKeys, notifyKeysChanged, type GeneratedKey } from './keystore.js';
import { assertEnabledAlg, KeyLifecycleError, recordKeyAudit, type ActorInfo, type KeyDeps } from './rotation.js';

export interface ImportOptions extends ActorInfo {
  /** A PEM private key: PKCS#8, SEC1 (EC) or PKCS#1 (RSA), unencrypted. */
  pem?: string;
  /** A private JWK (JSON text). */
  jwk?: string;
  /** Required for RSA keys whose JWK names no `alg` (RS256 or PS256); else checked against the key. */
  alg?: string;
}

export interface ImportResult {
  kid: string;
  alg: SigningAlg;
  state: 'next';
  published_at: string;
  promotable_at: string;
  /** the generated next key it replaced (never used to sign, so simply dropped) */
  replaced_next: string | null;
}

const invalid = (msg: string): KeyLifecycleError => new KeyLifecycleError('invalid_key', msg);

function readPrivateKey(opts: ImportOptions): { key: crypto.KeyObject; declaredAlg?: string } {
  if ((opts.pem === undefined) === (opts.jwk === undefined)) throw new KeyLifecycleError('invalid_request', 'give exactly one of a PEM or a JWK private key');
  if (opts.pem !== undefined) {
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(opts.pem)) throw invalid('the PEM holds no private key (expected BEGIN PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)');
    if (/ENCRYPTED/.test(opts.pem)) throw invalid('the PEM private key is encrypted: decrypt it first (openssl pkcs8 -topk8 -nocrypt)');
    try {
      return { key: crypto.createPrivateKey({ key: opts.pem, format: 'pem' }) };
    } catch (err) {
      throw invalid(`cannot read the PEM private key: ${(err as Error).message}`);
    }
  }
  let jwk: JWK;
  try {
    jwk = JSON.parse(opts.jwk!) as JWK;
  } catch {
    throw invalid('the JWK file is not valid JSON');
  }
  if (!jwk || typeof jwk !== 'object' || Array.isArray(jwk) || 'keys' in jwk) throw invalid('expected one JWK object (not a JWK Set)');
  if (typeof jwk.d !== 'string') throw invalid('the JWK is not a private key (no "d")');
  if (jwk.use !== undefined && jwk.use !== 'sig') throw invalid(`the JWK is for "use": ${String(jwk.use)}, not signatures`);
  if (jwk.alg !== undefined && typeof jwk.alg !== 'string') throw invalid('the JWK "alg" must be a string');
  try {
    return { key: crypto.createPrivateKey({ key: jwk as crypto.JsonWebKey, format: 'jwk' }), declaredAlg: jwk.alg };
  } catch (err) {
    throw invalid(`cannot read the JWK private key: ${(err as Error).message}`);
  }
}

/** Which of our algorithms this key serves: ES256 (P-256), EdDSA (Ed25519), RS256/PS256 (RSA ≥ 2048). */
function algFor(key: crypto.KeyObject, requested: string | undefined): SigningAlg {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  let candidates: SigningAlg[];
  if (type === 'ec') {
    if (details.namedCurve !== 'prime256v1') throw invalid(`EC keys must use P-256 (ES256), not ${details.namedCurve ?? 'this curve'}`);
    candidates = ['ES256'];
  } else if (type === 'ed25519') {
    candidates = ['EdDSA'];
  } else if (type === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048) throw invalid(`RSA keys must have at least 2048 bits, this one has ${details.modulusLength ?? '?'}`);
    candidates = ['RS256', 'PS256'];
  } else {
    throw invalid(`unsupported key type ${type ?? '?'} (supported: EC P-256, Ed25519, RSA ≥ 2048)`);
  }
  if (requested === undefined) {
    if (candidates.length > 1) throw new KeyLifecycleError('invalid_request', `an RSA key can serve RS256 or PS256: say which with --alg`);
    return candidates[0]!;
  }
  if (!(candidates as string[]).includes(requested)) throw invalid(`this ${type} key cannot be used for ${requested} (it serves ${candidates.join(' or ')})`);
  return requested as SigningAlg;
}

async function toSigningKey(key: crypto.KeyObject, alg: SigningAlg): Promise<GeneratedKey> {
  const pub = crypto.createPublicKey(key).export({ format: 'jwk' }) as JWK;
  const publicOnly: JWK = pub.kty === 'RSA' ? { kty: pub.kty, n: pub.n, e: pub.e } : { kty: pub.kty, crv: pub.crv, x: pub.x, ...(pub.y ? { y: pub.y } : {}) };
  const kid = await calculateJwkThumbprint(publicOnly, 'sha256');
  const privateJwk: JWK = { ...(key.export({ format: 'jwk' }) as JWK), kid, alg };
  const publicJwk: JWK = { ...publicOnly, kid, alg, use: 'sig' };
  // the published half must verify what the private half signs
  try {
    const probe = new TextEncoder().encode(`latchkey import ${kid}`);
    const jws = await new CompactSign(probe).setProtectedHeader({ alg }).sign(await importJWK(privateJwk, alg));
    await compactVerify(jws, await importJWK(publicJwk, alg));
  } catch {
    throw invalid('the private key does not match its public part');
  }
  return { kid, alg, publicJwk, privateJwk };
}

export async function importKey(deps: KeyDeps, opts: ImportOptions): Promise<ImportResult> {
  const { key, declaredAlg } = readPrivateKey(opts);
  if (opts.alg !== undefined && declaredAlg !== undefined && opts.alg !== declaredAlg) {
    throw new KeyLifecycleError('invalid_request', `--alg ${opts.alg} contradicts the JWK's "alg": ${declaredAlg}`);
  }
  const alg = algFor(key, opts.alg ?? declaredAlg);
  assertEnabledAlg(deps.config, alg);
  const signingKey = await toSigningKey(key, alg);
  const t = keyTiming(deps.config);
  return deps.db.transaction().execute(async (trx) => {
    await lockKeys(trx);
    await assertKeysSealedBy(trx, deps.kek);
    const at = new Date(deps.clock.now());
    const existing = await findSigningKeyState(trx, signingKey.kid);
    if (existing?.state === 'revoked') throw new KeyLifecycleError('conflict', `key ${signingKey.kid} was revoked; a revoked key never comes back`);
    if (existing) throw new KeyLifecycleError('conflict', `key ${signingKey.kid} is already here (${existing.state})`);
    // one next key per algorithm: the imported key takes the place of the generated one
    const replaced = await deleteNextKeys(trx, alg);
    await insertKey(trx, deps.kek, signingKey, 'next', at);
    await recordKeyAudit(trx, at, 'key.imported', opts, { kid: signingKey.kid, alg, replaced_next: replaced.map((r) => r.kid) });
    await notifyKeysChanged(trx, `imported:${signingKey.kid}`);
    return {
      kid: signingKey.kid,
      alg,
      state: 'next' as const,
      published_at: at.toISOString(),
      promotable_at: new Date(at.getTime() + t.publishSeconds * 1000).toISOString(),
      replaced_next: replaced[0]?.kid ?? null,
    };
  });
}

// The keystore: signing keys in Postgres (private parts sealed under the KEK), loaded as WebCrypto
// CryptoKeys and kept in memory; the JWKS body is precomputed with its ETag.
//
// Lifecycle (see rotation.ts): `next` (published, not signing) → `active` (signs; one per alg) →
// `retired` (published until its last token expired) → deleted; or `revoked` (out at once).
import crypto from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { systemClock, type Clock } from '../core/clock.js';
import { SUPPORTED_ALGS, type Config, type SigningAlg } from '../core/config.js';
import type { Database, KeyState, SigningKeyRow } from '../db/types.js';
import {
  activateSigningKey,
  activeAndNextKeyStates,
  findKeySealedByOtherKek,
  insertSigningKey,
  KEY_LIFECYCLE_LOCK_ID,
  lockSigningKeys,
  notifySigningKeysChanged,
  unrevokedSigningKeys,
} from '../store/signing-keys.js';
import { KekMismatch, open, seal, type Kek } from './kek.js';

/** NOTIFY channel: every replica reloads its keystore when a key changes. */
import { KEYS_CHANNEL } from '../core/channels.js';
export { KEYS_CHANNEL };
/** One advisory lock serializes every change of signing keys (bootstrap, rotation, revocation …). */
export { KEY_LIFECYCLE_LOCK_ID };

export type KeyTimingConfig = Pick<
  Config,
  'jwksMaxAge' | 'keyPublishMarginSeconds' | 'keyRotationDays' | 'accessTokenTtl' | 'idTokenTtl' | 'clockLeewaySeconds'
>;

export interface KeyTiming {
  /**
   * How long a key must have been in the JWKS (by its published_at) before it may sign:
   * JWKS_MAX_AGE, so that every resource server's cached copy has expired since, plus a margin for
   * replicas that follow late (≤ KEY_POLL_SECONDS) and for clock skew.
   */
  publishSeconds: number;
  /** A retired key stays published this long: the longest token lifetime plus the leeway. */
  retiredSeconds: number;
  rotationSeconds: number;
  leewaySeconds: number;
}

export function keyTiming(config: KeyTimingConfig): KeyTiming {
  return {
    publishSeconds: config.jwksMaxAge + config.keyPublishMarginSeconds,
    retiredSeconds: Math.max(config.accessTokenTtl, config.idTokenTtl) + config.clockLeewaySeconds,
    rotationSeconds: config.keyRotationDays * 86400,
    leewaySeconds: config.clockLeewaySeconds,
  };
}

export interface LoadedKey {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  publicJwk: JWK;
  publicKey: CryptoKey;
  /** Present for keys that may sign: active, next, and the latest retired key of each algorithm. */
  privateKey?: CryptoKey;
  publishedAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  expiresAt: Date | null;
  /** Began signing before it had been published for the full time (first key, --now, revocation). */
  promotedEarly: boolean;
}

export interface GeneratedKey {
  kid: string;
  alg: SigningAlg;
  publicJwk: JWK;
  privateJwk: JWK;
}

export async function generateSigningKey(alg: SigningAlg): Promise<GeneratedKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS256' || alg === 'PS256' ? { modulusLength: 2048 } : {}),
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
  });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub, 'sha256');
  const privateJwk = await exportJWK(privateKey);
  return { kid, alg, publicJwk: { ...pub, kid, alg, use: 'sig' }, privateJwk: { ...privateJwk, kid, alg } };
}

export function sealPrivateJwk(kek: Kek, kid: string, jwk: JWK): string {
  return seal(kek, JSON.stringify(jwk), `latchkey:signing-key:${kid}`);
}

export function openPrivateJwk(kek: Kek, row: Pick<SigningKeyRow, 'kid' | 'private_sealed'>): JWK {
  return JSON.parse(open(kek, row.private_sealed, `latchkey:signing-key:${row.kid}`).toString('utf8')) as JWK;
}

export async function insertKey(
  db: Kysely<Database>,
  kek: Kek,
  key: GeneratedKey,
  state: 'next' | 'active',
  at: Date,
  opts: { promotedEarly?: boolean } = {},
): Promise<void> {
  await insertSigningKey(db, {
    kid: key.kid,
    alg: key.alg,
    state,
    publicJwk: key.publicJwk as Record<string, unknown>,
    privateSealed: sealPrivateJwk(kek, key.kid, key.privateJwk),
    kekId: kek.id,
    at,
    promotedEarly: state === 'active' && Boolean(opts.promotedEarly),
  });
}

export async function lockKeys(trx: Transaction<Database>): Promise<void> {
  await lockSigningKeys(trx);
}

/** NOTIFY inside the transaction: delivered at commit, never for a change that rolled back. */
export async function notifyKeysChanged(trx: Transaction<Database>, payload: string): Promise<void> {
  await notifySigningKeysChanged(trx, payload);
}

/**
 * Refuse to write keys under a KEK other than the one that sealed the stored keys (after a
 * `keys rewrap`, a replica still running with the old KEK must not add keys only it can open).
 */
export async function assertKeysSealedBy(db: Kysely<Database>, kek: Kek): Promise<void> {
  const other = await findKeySealedByOtherKek(db, kek.id);
  if (other) throw new KekMismatch(`the signing keys are sealed under another KEK (id ${other.kek_id}, this one is ${kek.id})`);
}

export type EnsureAction = { action: 'created-active' | 'created-next' | 'promoted-next'; alg: SigningAlg; kid: string };

/**
 * Make sure `alg` has an active key and a published next key. A missing active key (first start)
 * is created active at once: nothing signed with this algorithm before, so no cache can miss it.
 */
export async function ensureKeySet(trx: Transaction<Database>, kek: Kek, alg: SigningAlg, at: Date): Promise<EnsureAction[]> {
  const rows = await activeAndNextKeyStates(trx, alg);
  const actions: EnsureAction[] = [];
  let active = rows.find((r) => r.state === 'active');
  let nextKeys = rows.filter((r) => r.state === 'next');
  if (!active) {
    const next = nextKeys[0];
    if (next) {
      await activateSigningKey(trx, next.kid, at, true);
      actions.push({ action: 'promoted-next', alg, kid: next.kid });
      nextKeys = nextKeys.slice(1);
      active = { kid: next.kid, state: 'active' };
    } else {
      const key = await generateSigningKey(alg);
      await insertKey(trx, kek, key, 'active', at, { promotedEarly: true });
      actions.push({ action: 'created-active', alg, kid: key.kid });
    }
  }
  if (nextKeys.length === 0) {
    const key = await generateSigningKey(alg);
    await insertKey(trx, kek, key, 'next', at);
    actions.push({ action: 'created-next', alg, kid: key.kid });
  }
  return actions;
}

/**
 * At start: one active and one published next key per enabled algorithm (ES256 for access tokens
 * by default, RS256 because OIDC Core §15.1 makes it mandatory for ID tokens). Serialized by the
 * lifecycle lock so that replicas starting together create one set.
 */
export async function bootstrapKeys(db: Kysely<Database>, kek: Kek, algs: SigningAlg[], clock: Clock): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await lockKeys(trx);
    await assertKeysSealedBy(trx, kek);
    const at = new Date(clock.now());
    const actions: EnsureAction[] = [];
    for (const alg of algs) actions.push(...(await ensureKeySet(trx, kek, alg, at)));
    if (actions.length) await notifyKeysChanged(trx, 'bootstrap');
    return actions.filter((a) => a.action !== 'promoted-next').map((a) => a.kid);
  });
}

export interface KeystoreOptions {
  clock?: Clock;
  /** Seconds a key must have been published before it may sign (keyTiming().publishSeconds). */
  publishSeconds?: number;
  /** Seconds after its retirement a key may still sign on a replica whose clock lags (the leeway). */
  leewaySeconds?: number;
}

export function keystoreOptions(config: KeyTimingConfig, clock: Clock): KeystoreOptions {
  const t = keyTiming(config);
  return { clock, publishSeconds: t.publishSeconds, leewaySeconds: t.leewaySeconds };
}

export class Keystore {
  private keys = new Map<string, LoadedKey>();
  private active = new Map<SigningAlg, LoadedKey>();
  private lastRetired = new Map<SigningAlg, LoadedKey>();
  private jwks = { body: '{"keys":[]}', etag: '"0"' };
  private loaded = false;
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private readonly clock: Clock;
  private readonly publishMs: number;
  private readonly leewayMs: number;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly kek: Kek,
    opts: KeystoreOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.publishMs = (opts.publishSeconds ?? 360) * 1000;
    this.leewayMs = (opts.leewaySeconds ?? 30) * 1000;
  }

  /**
   * Load every non-revoked key. Concurrent calls are serialized, so the last load reads the newest
   * rows. When the KEK cannot open a stored private key: on the first load, throws KekMismatch; later
   * (another replica rewrapped the keys under a new KEK), the new state is still applied — JWKS,
   * states, revocations — without that private key, so this replica stops signing rather than go on
   * with a stale key, and then KekMismatch is thrown for the caller to report.
   */
  reload(): Promise<void> {
    if (this.queued) return this.queued;
    const prev = this.running ?? Promise.resolve();
    const p: Promise<void> = prev
      .catch(() => {})
      .then(() => {
        this.queued = undefined;
        this.running = p;
        return this.load();
      })
      .finally(() => {
        if (this.running === p) this.running = undefined;
      });
    this.queued = p;
    return p;
  }

  private async load(): Promise<void> {
    const rows = await unrevokedSigningKeys(this.db);
    const latestRetired = new Map<string, SigningKeyRow>();
    for (const row of rows) {
      const cur = latestRetired.get(row.alg);
      if (row.state === 'retired' && row.retired_at && (!cur || cur.retired_at! < row.retired_at)) latestRetired.set(row.alg, row);
    }
    const keys = new Map<string, LoadedKey>();
    const active = new Map<SigningAlg, LoadedKey>();
    const lastRetired = new Map<SigningAlg, LoadedKey>();
    let mismatch: KekMismatch | undefined;
    for (const row of rows) {
      const alg = row.alg as SigningAlg;
      const prev = this.keys.get(row.kid);
      const publicJwk = row.public_jwk as JWK;
      const publicKey = prev?.publicKey ?? ((await importJWK(publicJwk, alg)) as CryptoKey);
      let privateKey: CryptoKey | undefined;
      if (row.state === 'active' || row.state === 'next' || latestRetired.get(row.alg) === row) {
        try {
          privateKey = prev?.privateKey ?? ((await importJWK(openPrivateJwk(this.kek, row), alg)) as CryptoKey);
        } catch (err) {
          if (!(err instanceof KekMismatch) || !this.loaded) throw err;
          mismatch = new KekMismatch(`the KEK cannot open the private part of key ${row.kid} (sealed under KEK id ${row.kek_id}, this one is ${this.kek.id}): restart with the current KEK`);
        }
      }
      const loaded: LoadedKey = {
        kid: row.kid,
        alg,
        state: row.state,
        publicJwk,
        publicKey,
        privateKey,
        publishedAt: row.published_at,
        activatedAt: row.activated_at,
        retiredAt: row.retired_at,
        expiresAt: row.expires_at,
        promotedEarly: row.promoted_early,
      };
      keys.set(row.kid, loaded);
      if (row.state === 'active') active.set(alg, loaded);
      if (latestRetired.get(row.alg) === row) lastRetired.set(alg, loaded);
    }
    const body = JSON.stringify({ keys: [...keys.values()].map((k) => k.publicJwk) });
    this.keys = keys;
    this.active = active;
    this.lastRetired = lastRetired;
    this.jwks = { body, etag: `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
    this.loaded = true;
    if (mismatch) throw mismatch;
  }

  get jwksBody(): string {
    return this.jwks.body;
  }

  get jwksEtag(): string {
    return this.jwks.etag;
  }

  /**
   * The key that signs for `alg` now. Normally the active key — but only once it has been in the
   * JWKS for publishSeconds by this replica's clock (unless it was promoted early on purpose).
   * If another replica promoted it by a clock running ahead of ours, the key it replaced keeps
   * signing here, for at most the leeway after its retirement (which its expiry already covers).
   */
  private currentSigner(alg: SigningAlg): LoadedKey | undefined {
    const now = this.clock.now();
    const key = this.active.get(alg);
    if (key?.privateKey && (key.promotedEarly || now - key.publishedAt.getTime() >= this.publishMs)) return key;
    const prev = this.lastRetired.get(alg);
    if (key && prev?.privateKey && prev.retiredAt && now <= prev.retiredAt.getTime() + this.leewayMs) return prev;
    return undefined;
  }

  hasSigningKey(alg: SigningAlg): boolean {
    return this.currentSigner(alg) !== undefined;
  }

  /** The key to sign with for `alg`; throws if there is none (readiness says so first). */
  signingKey(alg: SigningAlg): LoadedKey & { privateKey: CryptoKey } {
    const key = this.currentSigner(alg);
    if (key) return key as LoadedKey & { privateKey: CryptoKey };
    const active = this.active.get(alg);
    if (active) throw new Error(`the active ${alg} key ${active.kid} has not been published long enough to sign yet`);
    throw new Error(`no active signing key for ${alg}`);
  }

  /** The active key for `alg` as stored (whether or not this replica may sign with it yet). */
  activeKey(alg: SigningAlg): LoadedKey | undefined {
    return this.active.get(alg);
  }

  /** Algorithms with an active key, in SUPPORTED_ALGS order. */
  activeAlgs(): SigningAlg[] {
    return SUPPORTED_ALGS.filter((a) => this.active.has(a));
  }

  /** A published, non-revoked key by kid (for verifying tokens we issued). */
  verificationKey(kid: string): LoadedKey | undefined {
    return this.keys.get(kid);
  }

  list(): LoadedKey[] {
    return [...this.keys.values()];
  }
}

/**
 * The ID-token algorithms to advertise (`id_token_signing_alg_values_supported`) and accept in a
 * client's `id_token_signed_response_alg`: enabled algorithms with an active key.
 */
export function idTokenSigningAlgs(config: Pick<Config, 'enabledAlgs'>, keystore: Keystore): SigningAlg[] {
  return keystore.activeAlgs().filter((a) => config.enabledAlgs.includes(a));
}

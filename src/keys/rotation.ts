// Signing-key lifecycle operations: list, rotate (scheduled or by hand), revoke, and the
// maintenance step every replica runs. Plain functions over explicit deps, shared by the CLI and
// the admin API; each change runs in one transaction under the lifecycle advisory lock and
// NOTIFYs latchkey_keys at commit so that every replica reloads.
//
// Timing (keyTiming in keystore.ts):
// - a `next` key may be promoted once now − published_at ≥ JWKS_MAX_AGE + KEY_PUBLISH_MARGIN_SECONDS
//   (both from the injected clock and the database's published_at): by then every JWKS a resource
//   server cached before the key was published has expired, so no one can hold a JWKS without it;
// - a retired key stays published until retired_at + max(ACCESS_TOKEN_TTL, ID_TOKEN_TTL) + leeway
//   (its expires_at), then the maintenance step deletes it, private part included;
// - scheduled rotation: once the active key has signed for KEY_ROTATION_DAYS.
import type { Kysely, Transaction } from 'kysely';
import type { Clock } from '../core/clock.js';
import { SUPPORTED_ALGS, type Config, type SigningAlg } from '../core/config.js';
import type { Database, SigningKeyRow } from '../db/types.js';
import { recordAudit } from '../store/audit.js';
import {
  activateSigningKey,
  activeAndNextKeys,
  deleteExpiredRetiredKeys,
  findSigningKey,
  listSigningKeys,
  retireSigningKey,
  revokeSigningKey,
} from '../store/signing-keys.js';
import { KekMismatch, type Kek } from './kek.js';
import {
  assertKeysSealedBy,
  ensureKeySet,
  generateSigningKey,
  insertKey,
  keyTiming,
  lockKeys,
  notifyKeysChanged,
  type KeyTiming,
  type KeyTimingConfig,
} from './keystore.js';

export type KeyLifecycleConfig = KeyTimingConfig & Pick<Config, 'signingAlg' | 'enabledAlgs'>;

export interface KeyDeps {
  db: Kysely<Database>;
  kek: Kek;
  clock: Clock;
  config: KeyLifecycleConfig;
}

/** Who asked (recorded in the audit log): `cli`, `admin:<client_id>`, `system`. */
export interface ActorInfo {
  actor?: string;
  ip?: string | null;
}

export type KeyErrorCode = 'not_found' | 'too_early' | 'conflict' | 'invalid_key' | 'invalid_request';

/** A refused key operation; the admin API maps `code` to 404 / 409 / 400. */
export class KeyLifecycleError extends Error {
  constructor(
    readonly code: KeyErrorCode,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

export function assertEnabledAlg(config: Pick<Config, 'enabledAlgs'>, alg: string): SigningAlg {
  if (!(SUPPORTED_ALGS as readonly string[]).includes(alg)) throw new KeyLifecycleError('invalid_request', `unsupported algorithm ${alg} (supported: ${SUPPORTED_ALGS.join(', ')})`);
  if (!config.enabledAlgs.includes(alg as SigningAlg)) {
    throw new KeyLifecycleError('invalid_request', `algorithm ${alg} is not enabled here (enabled: ${config.enabledAlgs.join(', ')}; SIGNING_ALG chooses the default)`);
  }
  return alg as SigningAlg;
}

/** The audit record of a key operation (into audit_events, inside the operation's transaction). */
export async function recordKeyAudit(
  db: Kysely<Database>,
  at: Date,
  type: 'key.rotated' | 'key.revoked' | 'key.imported' | 'keys.rewrapped',
  who: ActorInfo,
  details: Record<string, unknown>,
): Promise<void> {
  await recordAudit(db, at, { type, actor: who.actor ?? 'system', ip: who.ip ?? null, details });
}

// ---------------------------------------------------------------------------------------------
// list

export interface KeyView {
  kid: string;
  alg: string;
  state: string;
  created_at: string;
  published_at: string;
  activated_at: string | null;
  retired_at: string | null;
  /** retired keys: when they leave the JWKS (their last token has expired by then) */
  expires_at: string | null;
  revoked_at: string | null;
  /** next keys: the earliest time a rotation may promote them without --now */
  promotable_at: string | null;
  promoted_early: boolean;
  kek_id: string;
}

export function keyView(row: SigningKeyRow, t: KeyTiming): KeyView {
  return {
    kid: row.kid,
    alg: row.alg,
    state: row.state,
    created_at: row.created_at.toISOString(),
    published_at: row.published_at.toISOString(),
    activated_at: iso(row.activated_at),
    retired_at: iso(row.retired_at),
    expires_at: iso(row.expires_at),
    revoked_at: iso(row.revoked_at),
    promotable_at: row.state === 'next' ? new Date(row.published_at.getTime() + t.publishSeconds * 1000).toISOString() : null,
    promoted_early: row.promoted_early,
    kek_id: row.kek_id,
  };
}

export async function listKeys(deps: { db: Kysely<Database>; config: KeyTimingConfig }, opts: { includeRevoked?: boolean } = {}): Promise<KeyView[]> {
  const rows = await listSigningKeys(deps.db, opts);
  const t = keyTiming(deps.config);
  return rows.map((r) => keyView(r, t));
}

// ---------------------------------------------------------------------------------------------
// rotation

async function currentKeys(trx: Transaction<Database>, alg: SigningAlg): Promise<{ active?: SigningKeyRow; next?: SigningKeyRow }> {
  const rows = await activeAndNextKeys(trx, alg);
  // the oldest next key is the one that has been published longest
  return { active: rows.find((r) => r.state === 'active'), next: rows.find((r) => r.state === 'next') };
}

interface Promotion {
  activated: string;
  retired: string | null;
  retiredExpiresAt: Date | null;
  published: string;
}

/** next → active, active → retired (with its expiry), and a new next key published. */
async function promote(trx: Transaction<Database>, kek: Kek, t: KeyTiming, alg: SigningAlg, active: SigningKeyRow | undefined, next: SigningKeyRow, at: Date, early: boolean): Promise<Promotion> {
  let retiredExpiresAt: Date | null = null;
  if (active) {
    retiredExpiresAt = new Date(at.getTime() + t.retiredSeconds * 1000);
    // first, so that the one-active-per-alg index never sees two
    await retireSigningKey(trx, active.kid, at, retiredExpiresAt);
  }
  await activateSigningKey(trx, next.kid, at, early);
  const fresh = await generateSigningKey(alg);
  await insertKey(trx, kek, fresh, 'next', at);
  return { activated: next.kid, retired: active?.kid ?? null, retiredExpiresAt, published: fresh.kid };
}

export interface RotateOptions extends ActorInfo {
  /** Default: the default signing algorithm (SIGNING_ALG). */
  alg?: string;
  /** Promote even a next key published too recently (the operator accepts the cache risk). */
  now?: boolean;
}

export interface RotationResult {
  alg: SigningAlg;
  activated: string;
  retired: string | null;
  retired_key_expires_at: string | null;
  published_next: string;
  /** how long the promoted key had been in the JWKS */
  promoted_key_published_seconds: number;
  promoted_early: boolean;
  warning?: string;
}

function cacheRiskWarning(config: KeyTimingConfig, kid: string, ageSeconds: number): string {
  return (
    `key ${kid} signs after only ${ageSeconds} s in the JWKS (less than JWKS_MAX_AGE ${config.jwksMaxAge} s + margin ${config.keyPublishMarginSeconds} s): ` +
    `resource servers that cached the JWKS before it was published reject its tokens until their copy expires (up to ${config.jwksMaxAge} s); this cache risk was accepted`
  );
}

/**
 * `keys rotate`: promote the published next key of `alg` if it has been published long enough
 * (else refuse with the time left, unless `now`), retire the active key and publish a new next.
 */
export async function rotateKeys(deps: KeyDeps, opts: RotateOptions = {}): Promise<RotationResult> {
  const alg = assertEnabledAlg(deps.config, opts.alg ?? deps.config.signingAlg);
  const t = keyTiming(deps.config);
  const out = await deps.db.transaction().execute(async (trx) => {
    await lockKeys(trx);
    await assertKeysSealedBy(trx, deps.kek);
    const at = new Date(deps.clock.now());
    let { active, next } = await currentKeys(trx, alg);
    if (!next) {
      // maintenance keeps one published; if it is missing, publish one now
      const key = await generateSigningKey(alg);
      await insertKey(trx, deps.kek, key, 'next', at);
      await notifyKeysChanged(trx, `next:${alg}`);
      if (!opts.now) return { refused: { kid: key.kid, age: 0 } } as const;
      next = (await currentKeys(trx, alg)).next!;
      active = (await currentKeys(trx, alg)).active;
    }
    const age = Math.floor((at.getTime() - next.published_at.getTime()) / 1000);
    const early = age < t.publishSeconds;
    if (early && !opts.now) return { refused: { kid: next.kid, age } } as const;
    const p = await promote(trx, deps.kek, t, alg, active, next, at, early);
    await recordKeyAudit(trx, at, 'key.rotated', opts, { alg, activated: p.activated, retired: p.retired, published_next: p.published, promoted_early: early, forced: Boolean(opts.now) });
    await notifyKeysChanged(trx, `rotated:${alg}`);
    return { done: { p, age, early } } as const;
  });
  if ('refused' in out) {
    const { kid, age } = out.refused!;
    const wait = t.publishSeconds - age;
    throw new KeyLifecycleError(
      'too_early',
      `the next ${alg} key ${kid} has been published for ${age} s; it may sign only after ${t.publishSeconds} s (JWKS_MAX_AGE ${deps.config.jwksMaxAge} s + margin ${deps.config.keyPublishMarginSeconds} s), so that no resource server still holds a JWKS without it: retry in ${wait} s, or pass --now to accept that resource servers reject its tokens until their cached JWKS expires`,
      wait,
    );
  }
  const { p, age, early } = out.done;
  return {
    alg,
    activated: p.activated,
    retired: p.retired,
    retired_key_expires_at: iso(p.retiredExpiresAt),
    published_next: p.published,
    promoted_key_published_seconds: age,
    promoted_early: early,
    ...(early ? { warning: cacheRiskWarning(deps.config, p.activated, age) } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// revocation

export interface RevocationResult {
  kid: string;
  alg: string;
  previous_state: string;
  revoked_at: string;
  /** the key that became active in its place (when the revoked key was active) */
  activated: string | null;
  published_next: string | null;
  /** resource servers holding a cached JWKS may accept the revoked key's tokens until then */
  resource_servers_may_accept_until: string;
  warning?: string;
}

/**
 * `keys revoke`, the big red button: the key leaves the JWKS and every Latchkey endpoint at once
 * (its private part is destroyed); if it was active, the next key becomes active at once and a new
 * next key is published. Resource servers drop it when their cached JWKS expires (≤ JWKS_MAX_AGE).
 */
export async function revokeKey(deps: KeyDeps, kid: string, opts: ActorInfo & { reason?: string } = {}): Promise<RevocationResult> {
  const t = keyTiming(deps.config);
  return deps.db.transaction().execute(async (trx) => {
    await lockKeys(trx);
    const at = new Date(deps.clock.now());
    const row = await findSigningKey(trx, kid);
    if (!row) throw new KeyLifecycleError('not_found', `no such key: ${kid}`);
    if (row.state === 'revoked') throw new KeyLifecycleError('conflict', `key ${kid} was already revoked at ${row.revoked_at?.toISOString() ?? '?'}`);
    await revokeSigningKey(trx, kid, at);

    const alg = row.alg as SigningAlg;
    const enabled = deps.config.enabledAlgs.includes(alg);
    const warnings: string[] = [];
    let activated: string | null = null;
    let publishedNext: string | null = null;
    // a new key can only be sealed under the KEK that sealed the others; the revocation itself
    // must never wait for that (a running server's maintenance publishes the missing key)
    let canCreate = enabled;
    if (enabled) {
      try {
        await assertKeysSealedBy(trx, deps.kek);
      } catch (err) {
        if (!(err instanceof KekMismatch)) throw err;
        canCreate = false;
        warnings.push('no new key was created: the KEK given does not match the stored keys; a running server will create it');
      }
    }
    if (row.state === 'active') {
      const { next } = await currentKeys(trx, alg);
      if (next) {
        await activateSigningKey(trx, next.kid, at, true);
        activated = next.kid;
        const age = Math.floor((at.getTime() - next.published_at.getTime()) / 1000);
        if (age < t.publishSeconds) warnings.push(cacheRiskWarning(deps.config, next.kid, age));
      } else if (canCreate) {
        const key = await generateSigningKey(alg);
        await insertKey(trx, deps.kek, key, 'active', at, { promotedEarly: true });
        activated = key.kid;
        warnings.push(cacheRiskWarning(deps.config, key.kid, 0));
      }
    }
    if ((row.state === 'active' || row.state === 'next') && canCreate) {
      const { next } = await currentKeys(trx, alg);
      if (!next) {
        const key = await generateSigningKey(alg);
        await insertKey(trx, deps.kek, key, 'next', at);
        publishedNext = key.kid;
      }
    }
    await recordKeyAudit(trx, at, 'key.revoked', opts, { kid, alg, previous_state: row.state, reason: opts.reason ?? null, activated, published_next: publishedNext });
    await notifyKeysChanged(trx, `revoked:${kid}`);
    return {
      kid,
      alg,
      previous_state: row.state,
      revoked_at: at.toISOString(),
      activated,
      published_next: publishedNext,
      resource_servers_may_accept_until: new Date(at.getTime() + deps.config.jwksMaxAge * 1000).toISOString(),
      ...(warnings.length ? { warning: warnings.join('; ') } : {}),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// maintenance

export interface MaintenanceAction {
  action: 'created-active' | 'created-next' | 'promoted-next' | 'rotated' | 'deleted-expired';
  alg: string;
  kid: string;
  retired?: string | null;
  published_next?: string;
}

/**
 * One maintenance step (every replica runs it every KEY_POLL_SECONDS; the lock makes one of them
 * do each change, the others then find nothing to do): keep an active and a next key per enabled
 * algorithm, rotate when the active key is KEY_ROTATION_DAYS old and the next key has been
 * published long enough, and delete retired keys whose last token has expired.
 */
export async function runKeyMaintenance(deps: KeyDeps): Promise<MaintenanceAction[]> {
  const t = keyTiming(deps.config);
  return deps.db.transaction().execute(async (trx) => {
    await lockKeys(trx);
    await assertKeysSealedBy(trx, deps.kek);
    const at = new Date(deps.clock.now());
    const actions: MaintenanceAction[] = [];
    for (const alg of deps.config.enabledAlgs) {
      actions.push(...(await ensureKeySet(trx, deps.kek, alg, at)));
      const { active, next } = await currentKeys(trx, alg);
      if (!active?.activated_at || !next) continue;
      const due = at.getTime() - active.activated_at.getTime() >= t.rotationSeconds * 1000;
      const seasoned = at.getTime() - next.published_at.getTime() >= t.publishSeconds * 1000;
      // a due rotation waits for a seasoned next key (e.g. one imported recently)
      if (!due || !seasoned) continue;
      const p = await promote(trx, deps.kek, t, alg, active, next, at, false);
      await recordKeyAudit(trx, at, 'key.rotated', { actor: 'system' }, { alg, activated: p.activated, retired: p.retired, published_next: p.published, scheduled: true });
      actions.push({ action: 'rotated', alg, kid: p.activated, retired: p.retired, published_next: p.published });
    }
    const expired = await deleteExpiredRetiredKeys(trx, at);
    for (const e of expired) actions.push({ action: 'deleted-expired', alg: e.alg, kid: e.kid });
    if (actions.length) await notifyKeysChanged(trx, 'maintenance');
    return actions;
  });
}

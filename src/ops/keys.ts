// Signing keys: list, rotate, revoke (the big red button), import, rewrap — for the CLI
// (`latchkey keys …`) and the admin API (/admin/keys). Every change NOTIFYs latchkey_keys inside its
// transaction, so running servers reload; inside a running server this one reloads before answering.
import { ConfigError } from '../core/config.js';
import { KekMismatch } from '../keys/kek.js';
import { importKey as importOne } from '../keys/import.js';
import { loadNewKek, rewrapKeys as rewrapAll } from '../keys/rewrap.js';
import { KeyLifecycleError, listKeys as allKeys, revokeKey as revokeOne, rotateKeys as rotate, type KeyDeps, type KeyView } from '../keys/rotation.js';
import { OpsError, type Actor, type OpsContext } from './context.js';

function deps(ctx: OpsContext): KeyDeps {
  return { db: ctx.db, kek: ctx.getKek(), clock: ctx.clock, config: ctx.config };
}

/** Run a key change: its refusals become OpsErrors, and a running server reloads its keys. */
async function change<T>(ctx: OpsContext, op: () => Promise<T>): Promise<T> {
  let out: T;
  try {
    out = await op();
  } catch (err) {
    if (err instanceof KeyLifecycleError) throw new OpsError(err.code, err.message, err.retryAfterSeconds);
    if (err instanceof ConfigError) throw new OpsError('invalid_request', err.message);
    if (err instanceof KekMismatch) throw new OpsError('invalid_key', `${err.message}: LATCHKEY_KEK must be the KEK that sealed the stored keys`);
    throw err;
  }
  await ctx.local?.reloadKeys();
  return out;
}

export function listKeys(ctx: OpsContext): Promise<KeyView[]> {
  return allKeys({ db: ctx.db, config: ctx.config });
}

export function rotateKeys(ctx: OpsContext, who: Actor, opts: { alg?: string; now?: boolean }) {
  return change(ctx, () => rotate(deps(ctx), { ...who, alg: opts.alg, now: Boolean(opts.now) }));
}

export function revokeKey(ctx: OpsContext, who: Actor, kid: string | undefined, reason?: string) {
  if (!kid) throw new OpsError('invalid_request', 'a kid is required (see `latchkey keys list`)');
  if (reason !== undefined && reason.length > 500) throw new OpsError('invalid_request', '--reason must be at most 500 characters');
  return change(ctx, () => revokeOne(deps(ctx), kid, { ...who, reason }));
}

export function importKey(ctx: OpsContext, who: Actor, input: { pem?: string; jwk?: string; alg?: string }) {
  return change(ctx, () => importOne(deps(ctx), { ...who, ...input }));
}

/** Re-seal every private key under a new KEK; refused inside a running server (it holds the old one). */
export function rewrapKeys(ctx: OpsContext, who: Actor, opts: { insideServer: boolean }) {
  if (opts.insideServer) throw new OpsError('conflict', 'stop the server first: it holds the current KEK in memory (then run `latchkey keys rewrap` and start it with the new KEK)');
  return change(ctx, () => rewrapAll({ ...who, db: ctx.db, clock: ctx.clock, oldKek: ctx.getKek(), newKek: loadNewKek(process.env) }));
}

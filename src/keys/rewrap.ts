// `keys rewrap`: re-encrypt every sealed private key (and the server secrets, sealed under the same
// KEK) under a new KEK, in one transaction: either all rows move to the new KEK or none does.
import { secretAad } from './secrets.js';
import fs from 'node:fs';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import { ConfigError } from '../core/config.js';
import type { Database } from '../db/types.js';
import { listServerSecrets, resealServerSecret } from '../store/server-secrets.js';
import { moveUnsealedKeysToKek, resealSigningKey, sealedSigningKeys } from '../store/signing-keys.js';
import { KekMismatch, kekFromBytes, open, seal, type Kek } from './kek.js';
import { lockKeys, openPrivateJwk, sealPrivateJwk } from './keystore.js';
import { KeyLifecycleError, recordKeyAudit, type ActorInfo } from './rotation.js';

/** The new KEK: LATCHKEY_NEW_KEK (base64 of 32 bytes), else the file LATCHKEY_NEW_KEK_FILE. */
export function loadNewKek(env: Record<string, string | undefined> = process.env): Kek {
  const parse = (text: string, variable: string): Kek => {
    const bytes = Buffer.from(text.trim(), 'base64');
    if (bytes.length !== 32) throw new ConfigError(variable, 'must hold base64 of exactly 32 bytes (run `latchkey kek generate`)');
    return kekFromBytes(bytes);
  };
  const inline = env.LATCHKEY_NEW_KEK?.trim();
  if (inline) return parse(inline, 'LATCHKEY_NEW_KEK');
  const file = env.LATCHKEY_NEW_KEK_FILE?.trim();
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError('LATCHKEY_NEW_KEK_FILE', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    return parse(text, 'LATCHKEY_NEW_KEK_FILE');
  }
  throw new ConfigError('LATCHKEY_NEW_KEK', 'is required (or LATCHKEY_NEW_KEK_FILE): the KEK to re-encrypt the keys under (generate one with `latchkey kek generate`)');
}

export interface RewrapDeps extends ActorInfo {
  db: Kysely<Database>;
  clock: Clock;
  oldKek: Kek;
  newKek: Kek;
}

export interface RewrapResult {
  from_kek_id: string;
  to_kek_id: string;
  signing_keys: number;
  server_secrets: number;
  next_step: string;
}


export async function rewrapKeys(deps: RewrapDeps): Promise<RewrapResult> {
  const { oldKek, newKek } = deps;
  if (oldKek.id === newKek.id) throw new KeyLifecycleError('invalid_request', 'the new KEK is the KEK in use: generate another with `latchkey kek generate`');
  return deps.db.transaction().execute(async (trx) => {
    await lockKeys(trx);
    const at = new Date(deps.clock.now());
    const keys = await sealedSigningKeys(trx);
    for (const row of keys) {
      let jwk;
      try {
        jwk = openPrivateJwk(oldKek, row);
      } catch (err) {
        if (err instanceof KekMismatch) throw new KekMismatch(`key ${row.kid} cannot be opened with the current KEK (it was sealed under KEK id ${row.kek_id}, the current one is ${oldKek.id}); nothing was changed`);
        throw err;
      }
      await resealSigningKey(trx, row.kid, sealPrivateJwk(newKek, row.kid, jwk), newKek.id);
    }
    // revoked keys have no private part left; their rows follow the new KEK too
    await moveUnsealedKeysToKek(trx, newKek.id);
    const secrets = await listServerSecrets(trx);
    for (const s of secrets) {
      let plain: Buffer;
      try {
        plain = open(oldKek, s.sealed, secretAad(s.name));
      } catch (err) {
        if (err instanceof KekMismatch) throw new KekMismatch(`server secret ${s.name} cannot be opened with the current KEK; nothing was changed`);
        throw err;
      }
      await resealServerSecret(trx, s.name, seal(newKek, plain, secretAad(s.name)), newKek.id);
    }
    await recordKeyAudit(trx, at, 'keys.rewrapped', deps, { from_kek_id: oldKek.id, to_kek_id: newKek.id, signing_keys: keys.length, server_secrets: secrets.length });
    return {
      from_kek_id: oldKek.id,
      to_kek_id: newKek.id,
      signing_keys: keys.length,
      server_secrets: secrets.length,
      next_step: 'restart every replica with the new KEK (LATCHKEY_KEK / LATCHKEY_KEK_FILE): the old KEK no longer opens any key',
    };
  });
}

// `latchkey keys …` commands (signing-key lifecycle), thin wrappers over src/keys/*. Every change
// NOTIFYs latchkey_keys at commit (inside the operation's transaction), so running servers reload;
// inside a running server (ctx.runtime) its keystore is also reloaded before the command returns.
import fs from 'node:fs';
import { ConfigError } from '../config.js';
import { KekMismatch } from '../keys/kek.js';
import { importKey } from '../keys/import.js';
import { loadNewKek, rewrapKeys } from '../keys/rewrap.js';
import { KeyLifecycleError, listKeys, revokeKey, rotateKeys, type KeyDeps } from '../keys/rotation.js';
// types only: commands.ts imports this module, so a value import back would be a cycle
import type { CliContext, Command, Values } from './commands.js';

/** A refused command: one line on stderr, exit code 1 (runParsed prints any error's first line). */
class CliError extends Error {}

function need(ctx: CliContext | undefined): CliContext {
  if (!ctx) throw new Error('this command needs the database');
  return ctx;
}

const str = (v: Values[string]): string | undefined => (typeof v === 'string' ? v : undefined);

const ACTOR = { actor: 'cli' };

function deps(ctx: CliContext): KeyDeps {
  return { db: ctx.db, kek: ctx.getKek(), clock: ctx.clock, config: ctx.config };
}

/** Run a key operation, turning its refusals into one-line CLI errors and reloading a running server. */
async function change<T>(ctx: CliContext, op: () => Promise<T>): Promise<T> {
  let out: T;
  try {
    out = await op();
  } catch (err) {
    if (err instanceof KeyLifecycleError || err instanceof ConfigError) throw new CliError(err.message);
    if (err instanceof KekMismatch) throw new CliError(`${err.message}: LATCHKEY_KEK must be the KEK that sealed the stored keys`);
    throw err;
  }
  await ctx.runtime?.keystore.reload();
  return out;
}

function readFileOption(ctx: CliContext, option: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const where = ctx.runtime ? ' (read by the running server: give an absolute path)' : '';
    throw new CliError(`--${option} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})${where}`);
  }
}

export const keysCommands: Record<string, Command> = {
  'keys list': {
    usage: 'latchkey keys list',
    options: {},
    needsDb: true,
    columns: ['kid', 'alg', 'state', 'published_at', 'activated_at', 'retired_at', 'expires_at', 'promotable_at'],
    async run(c) {
      const ctx = need(c);
      return listKeys({ db: ctx.db, config: ctx.config });
    },
  },

  'keys rotate': {
    usage: 'latchkey keys rotate [--alg ES256|EdDSA|RS256|PS256] [--now]',
    options: { alg: { type: 'string' }, now: { type: 'boolean' } },
    needsDb: true,
    async run(c, v) {
      const ctx = need(c);
      return change(ctx, () => rotateKeys(deps(ctx), { ...ACTOR, alg: str(v.alg), now: Boolean(v.now) }));
    },
  },

  'keys revoke': {
    usage: 'latchkey keys revoke <kid> [--reason TEXT]',
    options: { reason: { type: 'string' } },
    positionals: 1,
    needsDb: true,
    async run(c, v, p) {
      const ctx = need(c);
      const kid = p[0];
      if (!kid) throw new CliError('a kid is required (see `latchkey keys list`)');
      const reason = str(v.reason);
      if (reason !== undefined && reason.length > 500) throw new CliError('--reason must be at most 500 characters');
      return change(ctx, () => revokeKey(deps(ctx), kid, { ...ACTOR, reason }));
    },
  },

  'keys import': {
    usage: 'latchkey keys import (--pem FILE | --jwk FILE) [--alg RS256|PS256|ES256|EdDSA]',
    options: { pem: { type: 'string' }, jwk: { type: 'string' }, alg: { type: 'string' } },
    needsDb: true,
    async run(c, v) {
      const ctx = need(c);
      const pemFile = str(v.pem);
      const jwkFile = str(v.jwk);
      if ((pemFile === undefined) === (jwkFile === undefined)) throw new CliError('give exactly one of --pem FILE or --jwk FILE');
      const pem = pemFile === undefined ? undefined : readFileOption(ctx, 'pem', pemFile);
      const jwk = jwkFile === undefined ? undefined : readFileOption(ctx, 'jwk', jwkFile);
      return change(ctx, () => importKey(deps(ctx), { ...ACTOR, pem, jwk, alg: str(v.alg) }));
    },
  },

  'keys rewrap': {
    usage: 'latchkey keys rewrap   (old KEK: LATCHKEY_KEK / LATCHKEY_KEK_FILE; new: LATCHKEY_NEW_KEK / LATCHKEY_NEW_KEK_FILE)',
    options: {},
    needsDb: true,
    async run(c) {
      const ctx = need(c);
      if (ctx.runtime) throw new CliError('stop the server first: it holds the current KEK in memory (then run `latchkey keys rewrap` and start it with the new KEK)');
      return change(ctx, () => rewrapKeys({ ...ACTOR, db: ctx.db, clock: ctx.clock, oldKek: ctx.getKek(), newKek: loadNewKek(process.env) }));
    },
  },
};

// `latchkey keys …` (signing-key lifecycle) and `latchkey kek generate`.
import fs from 'node:fs';
import { generateKekBase64 } from '../../keys/kek.js';
import * as keys from '../../ops/keys.js';
import { CLI, CliError, need, str, type CliContext, type Command } from '../command.js';

function readFileOption(ctx: CliContext, option: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const where = ctx.insideServer ? ' (read by the running server: give an absolute path)' : '';
    throw new CliError(`--${option} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})${where}`);
  }
}

export const keyCommands: Record<string, Command> = {
  'kek generate': {
    usage: 'latchkey kek generate',
    options: {},
    needsDb: false,
    run: async () => ({ kek: generateKekBase64() }),
  },

  'keys list': {
    usage: 'latchkey keys list',
    options: {},
    needsDb: true,
    columns: ['kid', 'alg', 'state', 'published_at', 'activated_at', 'retired_at', 'expires_at', 'promotable_at'],
    run: (c) => keys.listKeys(need(c)),
  },

  'keys rotate': {
    usage: 'latchkey keys rotate [--alg ES256|EdDSA|RS256|PS256] [--now]',
    options: { alg: { type: 'string' }, now: { type: 'boolean' } },
    needsDb: true,
    run: (c, v) => keys.rotateKeys(need(c), CLI, { alg: str(v.alg), now: Boolean(v.now) }),
  },

  'keys revoke': {
    usage: 'latchkey keys revoke <kid> [--reason TEXT]',
    options: { reason: { type: 'string' } },
    positionals: 1,
    needsDb: true,
    run: (c, v, p) => keys.revokeKey(need(c), CLI, p[0], str(v.reason)),
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
      return keys.importKey(ctx, CLI, { pem, jwk, alg: str(v.alg) });
    },
  },

  'keys rewrap': {
    usage: 'latchkey keys rewrap   (old KEK: LATCHKEY_KEK / LATCHKEY_KEK_FILE; new: LATCHKEY_NEW_KEK / LATCHKEY_NEW_KEK_FILE)',
    options: {},
    needsDb: true,
    run: (c) => keys.rewrapKeys(need(c), CLI, { insideServer: Boolean(c?.insideServer) }),
  },
};

// `latchkey sessions …`: a user's grants to clients (refresh-token families). The name is kept
// for compatibility; `grants` is the same group (src/ops/grants.ts).
import * as grants from '../../ops/grants.js';
import { logoutEverywhere } from '../../ops/users.js';
import { CLI, CliError, need, str, type Command } from '../command.js';

const list: Command = {
  usage: 'latchkey sessions list (--user <id|email> | --client <client_id>) [--all]',
  options: { user: { type: 'string' }, client: { type: 'string' }, all: { type: 'boolean' } },
  needsDb: true,
  columns: ['id', 'user_id', 'client_id', 'scope', 'last_used_at', 'idle_expires_at', 'revoked_at', 'revoked_reason'],
  run(c, v) {
    if (!str(v.user) && !str(v.client)) throw new CliError('--user or --client is required');
    return grants.listGrants(need(c), { user: str(v.user), client: str(v.client), all: Boolean(v.all) });
  },
};

const revoke: Command = {
  usage: 'latchkey sessions revoke (--family <id> | --user <id|email> | --client <client_id>)',
  options: { family: { type: 'string' }, user: { type: 'string' }, client: { type: 'string' } },
  needsDb: true,
  async run(c, v) {
    const ctx = need(c);
    const given = ['family', 'user', 'client'].filter((k) => v[k] !== undefined);
    if (given.length !== 1) throw new CliError('give exactly one of --family, --user, --client');
    if (v.family !== undefined) {
      const r = await grants.revokeGrant(ctx, CLI, str(v.family)!);
      return { family: r.id, ...r };
    }
    if (v.user !== undefined) return logoutEverywhere(ctx, CLI, str(v.user)!);
    return grants.revokeClientGrants(ctx, CLI, str(v.client)!);
  },
};

const asGrants = (cmd: Command): Command => ({ ...cmd, usage: cmd.usage.replace('latchkey sessions', 'latchkey grants') });

export const sessionCommands: Record<string, Command> = {
  'sessions list': list,
  'sessions revoke': revoke,
  'grants list': asGrants(list),
  'grants revoke': asGrants(revoke),
};

// `latchkey audit` and `latchkey logout-notices list`: what happened, and what the RPs were told.
import { readAudit, readLogoutNotices } from '../../ops/audit.js';
import { CliError, need, str, type Command } from '../command.js';

export const auditCommands: Record<string, Command> = {
  audit: {
    usage: 'latchkey audit [--user <id|email>] [--type T] [--since ISO] [--until ISO] [--limit N]',
    options: { user: { type: 'string' }, type: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, limit: { type: 'string' } },
    needsDb: true,
    columns: ['at', 'type', 'actor', 'user_id', 'client_id', 'ip', 'details'],
    run: (c, v) => readAudit(need(c), { user: str(v.user), type: str(v.type), since: str(v.since), until: str(v.until), limit: str(v.limit) }),
  },

  'logout-notices list': {
    usage: 'latchkey logout-notices list [--failed | --pending | --delivered] [--client <client_id>] [--limit N]',
    options: { failed: { type: 'boolean' }, pending: { type: 'boolean' }, delivered: { type: 'boolean' }, client: { type: 'string' }, limit: { type: 'string' } },
    needsDb: true,
    run(c, v) {
      const statuses = (['failed', 'pending', 'delivered'] as const).filter((s) => v[s]);
      if (statuses.length > 1) throw new CliError('give at most one of --failed, --pending, --delivered');
      return readLogoutNotices(need(c), { status: statuses[0], client: str(v.client), limit: str(v.limit) });
    },
  },
};

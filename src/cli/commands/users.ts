// `latchkey users …`
import * as users from '../../ops/users.js';
import { isValidEmail } from '../../store/users.js';
import { CLI, CliError, need, passwordFromStdin, str, type Command } from '../command.js';

export const userCommands: Record<string, Command> = {
  'users create': {
    usage: 'latchkey users create --email E [--name N] [--email-verified] --password-stdin',
    options: { email: { type: 'string' }, name: { type: 'string' }, 'email-verified': { type: 'boolean' }, 'password-stdin': { type: 'boolean' } },
    needsDb: true,
    async run(c, v, _p, stdin) {
      const ctx = need(c);
      const email = str(v.email)?.trim();
      if (!email) throw new CliError('--email is required');
      if (!isValidEmail(email)) throw new CliError(`invalid email: ${email}`);
      return users.createUser(ctx, CLI, { email: str(v.email), name: str(v.name), emailVerified: Boolean(v['email-verified']), password: passwordFromStdin(v, stdin) });
    },
  },

  'users list': {
    usage: 'latchkey users list',
    options: {},
    needsDb: true,
    columns: ['id', 'email', 'name', 'email_verified', 'disabled', 'created_at'],
    run: (c) => users.listUsers(need(c)),
  },

  'users disable': {
    usage: 'latchkey users disable <id|email>',
    options: {},
    positionals: 1,
    needsDb: true,
    run: (c, _v, p) => users.disableUser(need(c), CLI, p[0]!),
  },

  'users enable': {
    usage: 'latchkey users enable <id|email>',
    options: {},
    positionals: 1,
    needsDb: true,
    run: (c, _v, p) => users.enableUser(need(c), CLI, p[0]!),
  },

  'users set-password': {
    usage: 'latchkey users set-password <id|email> --password-stdin',
    options: { 'password-stdin': { type: 'boolean' } },
    positionals: 1,
    needsDb: true,
    async run(c, v, p, stdin) {
      const ctx = need(c);
      await users.findUser(ctx, p[0]);
      const r = await users.setPassword(ctx, CLI, p[0]!, passwordFromStdin(v, stdin));
      return { id: r.user_id, ...r };
    },
  },

  'users delete': {
    usage: 'latchkey users delete <id|email>',
    options: {},
    positionals: 1,
    needsDb: true,
    run: (c, _v, p) => users.deleteUser(need(c), CLI, p[0]!),
  },
};

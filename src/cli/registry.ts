// The `latchkey` commands, framework-free: argv in, {code, stdout, stderr} out. The same function
// runs in the CLI process (when it opens the data itself) and inside a running embedded server
// (when the CLI forwards a command over the owner-only local socket). Each group of commands is in
// commands/<group>.ts, a thin layer over src/ops/.
import { parseArgs } from 'node:util';
import { migrate } from '../db/migrator.js';
import { isStorableText } from '../core/storable-text.js';
import { CliError, isRefusal, need, type CliContext, type CliResult, type Command, type Values } from './command.js';
import { userCommands } from './commands/users.js';
import { clientCommands } from './commands/clients.js';
import { sessionCommands } from './commands/sessions.js';
import { auditCommands } from './commands/audit.js';
import { keyCommands } from './commands/keys.js';
import { planCommands } from './commands/plan.js';

export type { CliContext, CliResult, Command } from './command.js';
export { CliError } from './command.js';

export const commands: Record<string, Command> = {
  migrate: {
    usage: 'latchkey migrate',
    options: {},
    needsDb: true,
    async run(ctx) {
      const applied = await migrate(need(ctx).db);
      return { applied };
    },
  },
  ...keyCommands,
  ...userCommands,
  ...sessionCommands,
  ...auditCommands,
  ...clientCommands,
  ...planCommands,
};

const GROUPS = ['users', 'clients', 'kek', 'keys', 'sessions', 'grants', 'logout-notices'];

/** Which command an argv names, and the rest of it. */
export function resolveCommand(argv: string[]): { name: string; command: Command; rest: string[] } | undefined {
  const two = `${argv[0]} ${argv[1]}`;
  if (commands[two]) return { name: two, command: commands[two], rest: argv.slice(2) };
  const one = argv[0];
  if (one && !GROUPS.includes(one) && commands[one]) return { name: one, command: commands[one], rest: argv.slice(1) };
  return undefined;
}

export function usage(): string {
  return ['usage:', ...Object.values(commands).map((c) => `  ${c.usage} [--json]`)].join('\n');
}

export function formatText(value: unknown): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return '(none)';
    return value.map((v) => formatText(v)).join('\n\n');
  }
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(' ') : v === null ? '-' : String(v)}`)
      .join('\n');
  }
  return String(value);
}

/** Rows as an aligned table with a header: arrays joined by commas, null as '-'. */
export function formatTable(rows: Array<Record<string, unknown>>, columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cell = (v: unknown): string =>
    v === null || v === undefined ? '-' : Array.isArray(v) ? v.join(',') || '-' : typeof v === 'object' ? JSON.stringify(v) : String(v).replace(/[\r\n\t]/g, ' ');
  const body = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((v, i) => (i === cells.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...body.map(line)].join('\n');
}

export interface ParsedCommand {
  name: string;
  command: Command;
  values: Values;
  positionals: string[];
  json: boolean;
  /** print a list command's rows as a table (the CLI sets it when stdout is a terminal) */
  table: boolean;
}

// Key ids (JWK thumbprints) and client ids are base64url and may begin with '-': such an argument
// is a positional when the command takes one and it is no option of the command's.
const ID_LIKE = /^-[A-Za-z0-9_-]{19,}$/;
function positionalsFirst(rest: string[], command: Command): string[] {
  if (!command.positionals) return rest;
  const options = command.options ?? {};
  const args: string[] = [];
  const ids: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--') return [...args, '--', ...ids, ...rest.slice(i + 1)];
    const name = a.startsWith('--') ? a.slice(2).split('=')[0]! : undefined;
    const option = name !== undefined ? options[name] : undefined;
    if (option) {
      // the value of a string option is its own, whatever it looks like
      if (option.type === 'string' && !a.includes('=') && i + 1 < rest.length) args.push(`${a}=${rest[++i]!}`);
      else args.push(a);
      continue;
    }
    if (ID_LIKE.test(a)) ids.push(a);
    else args.push(a);
  }
  return ids.length ? [...args, '--', ...ids] : args;
}

/** Parse argv strictly: an unknown command or option is a CliError. */
export function parseCommand(argv: string[]): ParsedCommand {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === 'help') throw new CliError(usage());
  // the same rule as the HTTP routes (src/http/plugins/input-sanity.ts): nothing Postgres cannot store
  const bad = argv.findIndex((a) => !isStorableText(a));
  if (bad >= 0) throw new CliError(`argument ${bad + 1} contains a NUL or another character that cannot be stored`);
  const found = resolveCommand(argv);
  if (!found) throw new CliError(`unknown command: ${argv.slice(0, 2).join(' ')} (run \`latchkey help\`)`);
  let parsed;
  try {
    parsed = parseArgs({ args: positionalsFirst(found.rest, found.command), options: { ...found.command.options, json: { type: 'boolean' }, table: { type: 'boolean' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(`${(err as Error).message.split('\n')[0]} (usage: ${found.command.usage})`);
  }
  const expected = found.command.positionals ?? 0;
  if (parsed.positionals.length !== expected) {
    throw new CliError(
      parsed.positionals.length > expected ? `unexpected argument: ${parsed.positionals[expected]} (usage: ${found.command.usage})` : `missing argument (usage: ${found.command.usage})`,
    );
  }
  const { json, table, ...values } = parsed.values as Values;
  return { name: found.name, command: found.command, values, positionals: parsed.positionals, json: Boolean(json), table: Boolean(table) };
}

export async function runParsed(p: ParsedCommand, ctx: CliContext | undefined, stdin: string | undefined): Promise<CliResult> {
  try {
    const out = await p.command.run(ctx, p.values, p.positionals, stdin);
    const text = p.json ? JSON.stringify(out) : p.table && p.command.columns && Array.isArray(out) ? formatTable(out as Array<Record<string, unknown>>, p.command.columns) : formatText(out);
    return { code: 0, stdout: `${text}\n`, stderr: '' };
  } catch (err) {
    if (isRefusal(err)) return { code: 1, stdout: '', stderr: `error: ${err.message}\n` };
    return { code: 1, stdout: '', stderr: `error: ${(err as Error).message.split('\n')[0]}\n` };
  }
}

/** Parse and run; never throws. */
export async function runCommand(argv: string[], ctx: CliContext | undefined, stdin: string | undefined): Promise<CliResult> {
  let p: ParsedCommand;
  try {
    p = parseCommand(argv);
  } catch (err) {
    return { code: 2, stdout: '', stderr: `error: ${(err as Error).message}\n` };
  }
  return runParsed(p, ctx, stdin);
}

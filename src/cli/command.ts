// What every `latchkey` command is made of: its context, its options, its one error type, and the
// helpers that read option values. The commands themselves are in commands/<group>.ts, thin layers
// over src/ops/; registry.ts parses argv and runs them.
import type { ParseArgsConfig } from 'node:util';
import type { OpsContext, Actor } from '../ops/context.js';
import { OpsError } from '../ops/context.js';

/** The ops context; `insideServer` when the command runs in a running server (over the local socket). */
export type CliContext = OpsContext & { insideServer?: boolean };

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A refused command: one line on stderr, exit code 1. */
export class CliError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  usage: string;
  options: Options;
  positionals?: number;
  needsDb: boolean;
  /** A list command: the columns of its table (`--table`, the default on a terminal). */
  columns?: string[];
  run(ctx: CliContext | undefined, values: Values, positionals: string[], stdin: string | undefined): Promise<unknown>;
}

/** Every CLI operation is recorded as done by `cli`. */
export const CLI: Actor = { actor: 'cli' };

export function need(ctx: CliContext | undefined): CliContext {
  if (!ctx) throw new Error('this command needs the database');
  return ctx;
}

export function str(v: Values[string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function list(v: Values[string]): string[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v.map(String);
  return [String(v)];
}

export function commaList(v: Values[string]): string[] | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

export function stripOneNewline(s: string): string {
  if (s.endsWith('\r\n')) return s.slice(0, -2);
  if (s.endsWith('\n')) return s.slice(0, -1);
  return s;
}

/** The password a command reads from standard input (`--password-stdin`). */
export function passwordFromStdin(v: Values, stdin: string | undefined): string {
  if (!v['password-stdin']) throw new CliError('--password-stdin is required (the password is read from standard input)');
  const password = stdin === undefined ? undefined : stripOneNewline(stdin);
  if (password === undefined || password === '') throw new CliError('a password is required on standard input (--password-stdin)');
  return password;
}

/** At most one of these flags. */
export function oneOf(v: Values, names: string[], what = names.map((n) => `--${n}`).join(' or ')): string | undefined {
  const given = names.filter((n) => v[n] !== undefined && v[n] !== false);
  if (given.length > 1) throw new CliError(`give ${what}, not both`);
  return given[0];
}

/** An ops refusal is a CLI refusal (its message, exit code 1). */
export function isRefusal(err: unknown): err is Error {
  return err instanceof CliError || err instanceof OpsError;
}

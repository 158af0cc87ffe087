// What an admin operation runs with, whoever asks: the CLI (in its own process, or inside a running
// server over the local socket), the admin API, and the console that comes next. Each operation in
// src/ops/ does its whole job here — the change, the NOTIFY that tells every replica, this
// replica's own copies (when it runs inside a server), the audit event — so the surfaces differ only
// in how they parse input and print output.
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { Database } from '../db/types.js';
import type { Kek } from '../keys/kek.js';
import type { PasswordHasher } from '../accounts/passwords.js';
import { recordAudit, type AuditEvent } from '../store/audit.js';
import { isDatabaseUnavailable } from '../db/errors.js';

/** This replica's in-memory copies, refreshed before an operation returns (other replicas hear the NOTIFY). */
export interface LocalCopies {
  userChanged(userId: string): void;
  clientChanged(clientId: string): void;
  /** Read the denylist now, so that this replica refuses what was just revoked before we answer. */
  syncDenylist(): Promise<void>;
  reloadKeys(): Promise<void>;
}

export interface OpsContext {
  config: Config;
  db: Kysely<Database>;
  clock: Clock;
  passwords: PasswordHasher;
  /** NOTIFY other replicas (and a running server) of a change. */
  notify(channel: string, payload: string): Promise<void>;
  /** The KEK, loaded on first use (only key operations need it). */
  getKek(): Kek;
  /** Present when the operation runs inside a running server. */
  local?: LocalCopies;
  /** An audit write that failed after the change committed (the change stands). */
  onAuditError?(err: Error, type: string): void;
}

/** Who asks: `cli`, or `client:<id>` for an admin API token; the address when over HTTP. */
export interface Actor {
  actor: string;
  ip?: string;
}

export type OpsErrorCode = 'not_found' | 'invalid_request' | 'conflict' | 'too_early' | 'invalid_key';

/** A refused operation: the surface maps it (CLI: one line on stderr, exit 1; API: 400/404/409). */
export class OpsError extends Error {
  constructor(
    readonly code: OpsErrorCode,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const now = (ctx: Pick<OpsContext, 'clock'>): Date => new Date(ctx.clock.now());

/** Record the operation's audit event; the change has committed, so a failed write is reported, not thrown. */
export async function audit(ctx: OpsContext, who: Actor, e: Omit<AuditEvent, 'actor' | 'ip'>): Promise<void> {
  try {
    await recordAudit(ctx.db, now(ctx), { ...e, actor: who.actor, ip: who.ip });
  } catch (err) {
    if (!isDatabaseUnavailable(err)) ctx.onAuditError?.(err as Error, e.type);
  }
}

/** An ISO 8601 time within what timestamptz holds (JavaScript dates reach ±275760 years). */
export function parseTime(s: string | undefined, name: string): Date | undefined {
  if (s === undefined) return undefined;
  const d = new Date(s);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1 || d.getUTCFullYear() > 9999) throw new OpsError('invalid_request', `${name} must be an ISO 8601 time`);
  return d;
}

/** A list limit: 1 to 9999, 100 by default. */
export function parseLimit(s: string | undefined, name = 'limit'): number {
  if (s === undefined) return 100;
  if (!/^\d{1,4}$/.test(s)) throw new OpsError('invalid_request', `${name} must be a number up to 9999`);
  return Number(s);
}

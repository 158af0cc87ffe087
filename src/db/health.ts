// The outage state of this replica's database: one object that knows since when the database has
// been unreachable. It is fed by the notification (LISTEN) connection's state and by query
// failures (src/db/errors.ts says which ones); while the database is unreachable it probes with
// `SELECT 1` until a query succeeds again.
//
// An outage begins with the first sign (the LISTEN connection lost, or a query failing for want
// of the database) and ends when queries succeed and the LISTEN connection is back. Within
// DB_OUTAGE_GRACE_SECONDS of its beginning, the paths that need nothing new from the database
// answer from what this replica last knew (the caches, the denylist view, the keystore); past it,
// everything but the health checks answers 503. Everything the caches hold was current at the
// beginning of the outage or read later, so no answer from memory is older than the grace. A
// revocation committed through another replica meanwhile is seen once this one reconnects.
import { sql, type Kysely } from 'kysely';
import type { Database } from './types.js';
import type { Clock } from '../core/clock.js';
import { databaseUnavailableReason, type UnavailableReason } from './errors.js';

export interface HealthLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface DbHealthOptions {
  clock: Clock;
  /** DB_OUTAGE_GRACE_SECONDS: how long memory may answer for an unreachable database (0: never). */
  graceSeconds: number;
  /** A query that succeeds when the database serves again. */
  probe: () => Promise<unknown>;
  log: HealthLog;
  backend: string;
  probeIntervalMs?: number;
}

export interface OutageStatus {
  /** When the outage began (ISO 8601). */
  since: string;
  /** How old the state this replica answers from is, in seconds. */
  cached_state_age_seconds: number;
  grace_seconds: number;
  /** Whether the stateless paths answer from memory now (the database unreachable, within the grace). */
  serving_from_memory: boolean;
  database_reachable: boolean;
  notifications_connected: boolean;
  /** Requests answered 503 during this outage. */
  refused: number;
}

// at most one warning a minute, however often a flapping database comes and goes
const WARN_INTERVAL_MS = 60_000;

export class DbHealth {
  #since: number | undefined;
  #reachable = true;
  #listening = true;
  #refused = 0;
  /** Whether this outage was considered for the warning, and whether it was logged. */
  #considered = false;
  #warned = false;
  #lastWarnAt = -Infinity;
  #suppressed = 0;
  #probing = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #graceMs: number;

  constructor(private readonly opts: DbHealthOptions) {
    this.#graceMs = opts.graceSeconds * 1000;
  }

  /** When the current outage began (clock ms), or undefined when there is none. */
  get since(): number | undefined {
    return this.#since;
  }

  /** Whether queries are known to succeed (false from a failure until a query succeeds again). */
  get reachable(): boolean {
    return this.#reachable;
  }

  /** The database is unreachable and the outage is younger than the grace: memory may answer for it. */
  servesFromMemory(): boolean {
    return !this.#reachable && this.#since !== undefined && this.opts.clock.now() - this.#since < this.#graceMs;
  }

  /** The database has been unreachable for longer than the grace: only the health checks answer. */
  pastGrace(): boolean {
    return !this.#reachable && this.#since !== undefined && !(this.opts.clock.now() - this.#since < this.#graceMs);
  }

  /** A query failed. Only an outage error (src/db/errors.ts) counts; returns whether it was one. */
  reportFailure(err: unknown): boolean {
    const reason = databaseUnavailableReason(err);
    if (!reason) return false;
    this.#fail(reason);
    return true;
  }

  /** A query succeeded. */
  reportSuccess(): void {
    this.#reachable = true;
    this.#maybeEnd();
  }

  /** A request was answered 503 because of the outage. */
  noteRefused(): void {
    this.#refused++;
  }

  /** The notification connection was lost: presume the database gone until the probe says otherwise. */
  listenLost(): void {
    this.#listening = false;
    this.#reachable = false;
    this.#begin();
    this.#probe();
  }

  listenBack(): void {
    this.#listening = true;
    this.#maybeEnd();
  }

  status(): OutageStatus | undefined {
    if (this.#since === undefined) return undefined;
    const now = this.opts.clock.now();
    return {
      since: new Date(this.#since).toISOString(),
      cached_state_age_seconds: Math.max(0, Math.round((now - this.#since) / 100) / 10),
      grace_seconds: this.opts.graceSeconds,
      serving_from_memory: this.servesFromMemory(),
      database_reachable: this.#reachable,
      notifications_connected: this.#listening,
      refused: this.#refused,
    };
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #begin(): void {
    if (this.#since !== undefined) return;
    this.#since = this.opts.clock.now();
    this.#refused = 0;
    this.#considered = false;
    this.#warned = false;
  }

  #fail(reason: UnavailableReason): void {
    this.#reachable = false;
    this.#begin();
    if (!this.#considered) {
      this.#considered = true;
      const now = this.opts.clock.now();
      if (now - this.#lastWarnAt >= WARN_INTERVAL_MS) {
        this.#warned = true;
        this.#lastWarnAt = now;
        const grace = this.opts.graceSeconds;
        this.opts.log.warn(
          { backend: this.opts.backend, kind: reason.kind, reason: reason.message, ...(reason.code ? { code: reason.code } : {}), graceSeconds: grace, ...(this.#suppressed ? { earlierOutagesNotLogged: this.#suppressed } : {}) },
          grace > 0
            ? `database unavailable (${reason.kind}): answering 503, and for ${grace} s the paths that need nothing new from the database from memory`
            : `database unavailable (${reason.kind}): answering 503`,
        );
        this.#suppressed = 0;
      } else {
        this.#suppressed++;
      }
    }
    this.#probe();
  }

  #maybeEnd(): void {
    if (this.#since === undefined || !this.#reachable || !this.#listening) return;
    if (this.#warned) this.opts.log.info({ backend: this.opts.backend, outageMs: this.opts.clock.now() - this.#since, refused: this.#refused }, 'database available again');
    this.#since = undefined;
  }

  /** Probe until a query succeeds; one probe at a time. */
  #probe(): void {
    if (this.#probing || this.#stopped) return;
    this.#probing = true;
    const attempt = (): void => {
      this.#timer = undefined;
      if (this.#stopped || this.#reachable) {
        this.#probing = false;
        return;
      }
      this.opts.probe().then(
        () => {
          this.#probing = false;
          this.reportSuccess();
        },
        (err: unknown) => {
          // an error that is not an outage error still means no answer: keep probing
          this.#fail(databaseUnavailableReason(err) ?? { kind: 'outage', message: String((err as Error)?.message ?? err).split('\n')[0]! });
          this.#timer = setTimeout(attempt, this.opts.probeIntervalMs ?? 100);
          this.#timer.unref();
        },
      );
    };
    attempt();
  }
}

/** The cheapest round trip: `SELECT 1`. */
export function pingDatabase(db: Kysely<Database>): Promise<unknown> {
  return sql`SELECT 1`.execute(db);
}

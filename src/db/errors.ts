// Which errors mean "the database is away" rather than "this request is wrong" or "we have a bug":
// decided here once, for both backends. Such an error is answered 503 with Retry-After by the one
// error handler (src/http/plugins/error-handler.ts), feeds the outage state (src/db/health.ts),
// and never produces a stack trace in the logs.

/** Why the database cannot answer, for the one log line of an outage. */
export type UnavailableKind = 'connection' | 'timeout' | 'disk_full' | 'storage' | 'shutdown' | 'resources' | 'closed' | 'outage';

export interface UnavailableReason {
  kind: UnavailableKind;
  /** The first line of the underlying error's message (never a query's parameters). */
  message: string;
  /** The SQLSTATE or errno code, when there is one. */
  code?: string;
}

/** Thrown by the parts that refuse to answer from memory (the caches past the outage grace). */
export class DatabaseUnavailable extends Error {
  constructor(
    message = 'the database is unreachable',
    readonly reason?: UnavailableReason,
  ) {
    super(message);
    this.name = 'DatabaseUnavailable';
  }
}

// Node's socket and file-system errnos that mean the server or its storage cannot be reached
const ERRNO: Record<string, UnavailableKind> = {
  ECONNREFUSED: 'connection',
  ECONNRESET: 'connection',
  ECONNABORTED: 'connection',
  EPIPE: 'connection',
  EHOSTUNREACH: 'connection',
  ENETUNREACH: 'connection',
  ENETDOWN: 'connection',
  ENOTFOUND: 'connection',
  EAI_AGAIN: 'connection',
  ETIMEDOUT: 'timeout',
  ENOSPC: 'disk_full',
  EDQUOT: 'disk_full',
  EIO: 'storage',
  EROFS: 'storage',
  ENOLCK: 'storage',
};

// The messages of `pg` and `pg-pool` for a lost or unobtainable connection and the client-side query
// timeout, and of PGlite once its instance is closed; they carry no code of their own.
const MESSAGES: [RegExp, UnavailableKind][] = [
  [/^Connection terminated/, 'connection'],
  [/^Client has encountered a connection error and is not queryable/, 'connection'],
  [/^Client was closed and is not queryable/, 'connection'],
  [/^timeout exceeded when trying to connect/, 'timeout'],
  [/^Query read timeout/, 'timeout'],
  [/^Cannot use a pool after calling end on the pool/, 'closed'],
  [/^PGlite is closed/, 'closed'],
];

/**
 * SQLSTATE classes and codes (PostgreSQL Appendix A) that say the server cannot serve now:
 * 08 connection exception, 53 insufficient resources (53100 disk full), 57P01–57P03 shutdown or
 * starting up, 57014 statement timeout or cancel, 58 system error (I/O, a lost file or lock),
 * 25006 a read-only server (a standby after a failover).
 */
function sqlstateKind(code: string): UnavailableKind | undefined {
  if (!/^[0-9A-Z]{5}$/.test(code)) return undefined;
  if (code.startsWith('08')) return 'connection';
  if (code === '53100') return 'disk_full';
  if (code.startsWith('53')) return 'resources';
  if (code === '57P01' || code === '57P02' || code === '57P03') return 'shutdown';
  if (code === '57014') return 'timeout';
  if (code.startsWith('58')) return 'storage';
  if (code === '25006') return 'storage';
  return undefined;
}

function firstLine(s: unknown): string {
  return String(s ?? '').split('\n')[0]!.slice(0, 300);
}

/** What makes `err` a database outage, or undefined when it is not one. Follows `cause` and AggregateError. */
export function databaseUnavailableReason(err: unknown, depth = 0): UnavailableReason | undefined {
  if (!err || typeof err !== 'object' || depth > 4) return undefined;
  if (err instanceof DatabaseUnavailable) return err.reason ?? { kind: 'outage', message: err.message };
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown; name?: unknown };
  const message = firstLine(e.message);
  if (typeof e.code === 'string') {
    const kind = ERRNO[e.code] ?? sqlstateKind(e.code);
    if (kind) return { kind, message, code: e.code };
  }
  for (const [re, kind] of MESSAGES) if (re.test(message)) return { kind, message };
  // the embedded engine aborted (a WebAssembly trap): nothing more will run on it
  if (e.name === 'RuntimeError' && /Aborted|unreachable/.test(message)) return { kind: 'closed', message };
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const r = databaseUnavailableReason(inner, depth + 1);
      if (r) return r;
    }
  }
  return e.cause ? databaseUnavailableReason(e.cause, depth + 1) : undefined;
}

export function isDatabaseUnavailable(err: unknown): boolean {
  return databaseUnavailableReason(err) !== undefined;
}

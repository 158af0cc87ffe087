// createVerifier: an RFC 9068 access token, verified with jose against the issuer's JWKS with pinned
// algorithms, then (when it carries one) checked against its Token Status List.
import { createLocalJWKSet, createRemoteJWKSet, customFetch, jwksCache, jwtVerify, type ExportedJWKSCache, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { InsufficientScope, InvalidToken, type VerifyReason } from './errors.js';
import { StatusListCache, StatusUnavailable, STATUS_SUSPENDED, statusAt, type LogEntry, type LogFn } from './status-list.js';

export interface VerifierOptions {
  /** The issuer, exactly as in the tokens' `iss` (e.g. `https://login.example.com`). */
  issuer: string;
  /** This resource server's audience(s): the token's `aud` must contain one of them. */
  audience: string | string[];
  /** Accepted signature algorithms; nothing in a token's header chooses one. Default `['ES256']`. */
  algorithms?: string[];
  /** Leeway for exp/nbf/iat, in seconds. Default 30. */
  clockTolerance?: number;
  /** `'enforce'` (default): check each token's status list entry; `'off'`: signature and claims only. */
  statusList?: 'enforce' | 'off';
  /** With `statusList: 'enforce'`, refuse a token that carries no status reference. Default true. */
  requireStatus?: boolean;
  /** Seconds past a status list's ttl during which its last good copy is used while it cannot be fetched. Default 60. */
  maxStaleness?: number;
  /** Default `<issuer>/.well-known/jwks.json`. */
  jwksUri?: string;
  /**
   * Seconds the JWKS is used before it is fetched again (an unknown `kid` refetches sooner). A key
   * the issuer removed (rotated out or revoked) is trusted at most this long. Default 60.
   */
  jwksMaxAge?: number;
  /** Default `globalThis.fetch`; used for the JWKS and the status lists. */
  fetch?: typeof fetch;
  /** Where the verifier reports what an operator must know (a list it cannot fetch, failing closed). Default: one JSON line on stderr for warn and error. */
  onLog?: LogFn;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Milliseconds before a JWKS or status list request is abandoned. Default 5000. */
  fetchTimeout?: number;
  /** Milliseconds between two attempts to fetch a list that failed. Default 1000. */
  retryInterval?: number;
}

export interface StatusReference {
  status_list: { idx: number; uri: string };
}

/** The claims of a verified access token (RFC 9068 §2.2). */
export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  status?: StatusReference;
}

export interface VerifyOptions {
  /** Scopes the token must all carry; otherwise InsufficientScope (403). */
  scope?: string | string[];
}

export interface Verifier {
  /** The token's claims, or a VerifyError (InvalidToken, InsufficientScope). */
  verify(token: string, options?: VerifyOptions): Promise<AccessTokenClaims>;
}

const defaultLog: LogFn = (entry: LogEntry) => {
  if (entry.level !== 'info') process.stderr.write(`${JSON.stringify({ name: '@latchkey/verify', ...entry })}\n`);
};

export function createVerifier(options: VerifierOptions): Verifier {
  const issuer = options.issuer;
  if (typeof issuer !== 'string' || !URL.canParse(issuer)) throw new TypeError('issuer must be an absolute URL');
  const audience = options.audience;
  if (!audience || (Array.isArray(audience) && audience.length === 0)) throw new TypeError('audience is required');
  const algorithms = options.algorithms ?? ['ES256'];
  if (algorithms.length === 0 || algorithms.some((a) => a === 'none' || a.startsWith('HS'))) throw new TypeError('algorithms must name asymmetric signature algorithms');
  const clockTolerance = options.clockTolerance ?? 30;
  const mode = options.statusList ?? 'enforce';
  if (mode !== 'enforce' && mode !== 'off') throw new TypeError("statusList must be 'enforce' or 'off'");
  const requireStatus = options.requireStatus ?? true;
  const maxStaleness = options.maxStaleness ?? 60;
  if (!(maxStaleness >= 0)) throw new TypeError('maxStaleness must be a number of seconds ≥ 0');
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  const log = options.onLog ?? defaultLog;
  const fetchTimeout = options.fetchTimeout ?? 5000;
  const issuerOrigin = new URL(issuer).origin;

  const jwksMaxAge = options.jwksMaxAge ?? 60;
  if (!(jwksMaxAge >= 0)) throw new TypeError('jwksMaxAge must be a number of seconds ≥ 0');
  const keys = keysWithStaleFallback(
    new URL(options.jwksUri ?? `${issuer.replace(/\/$/, '')}/.well-known/jwks.json`),
    { fetchTimeout, fetch: fetchImpl, maxAgeMs: jwksMaxAge * 1000, maxStalenessMs: maxStaleness * 1000, log },
  );
  const lists = new StatusListCache({
    issuer,
    algorithms,
    clockTolerance,
    maxStaleness,
    defaultTtl: 10,
    fetchTimeout,
    retryInterval: options.retryInterval ?? 1000,
    maxResponseBytes: 16 * 1024 * 1024,
    maxListBytes: 16 * 1024 * 1024,
    keys,
    fetch: fetchImpl,
    now,
    log,
  });

  async function checkStatus(claims: AccessTokenClaims): Promise<void> {
    const status = claims.status as unknown;
    const ref = status && typeof status === 'object' ? (status as { status_list?: unknown }).status_list : undefined;
    if (ref === undefined) {
      if (requireStatus) throw new InvalidToken('status_missing', 'the token carries no status reference');
      return;
    }
    const { idx, uri } = (ref ?? {}) as { idx?: unknown; uri?: unknown };
    if (typeof idx !== 'number' || !Number.isSafeInteger(idx) || idx < 0 || typeof uri !== 'string') throw new InvalidToken('claims', 'the status claim is malformed');
    // the list must come from the issuer: a token's claim never sends us to another host
    let u: URL;
    try {
      u = new URL(uri);
    } catch {
      throw new InvalidToken('status_uri', 'the status list uri is not a URL');
    }
    if (u.origin !== issuerOrigin || u.username || u.password || u.hash) throw new InvalidToken('status_uri', "the status list uri is not on the issuer's origin");
    let list;
    try {
      list = await lists.get(uri);
    } catch (err) {
      if (err instanceof StatusUnavailable) throw new InvalidToken('status_unavailable', 'the token status cannot be checked');
      throw err;
    }
    const value = statusAt(list, idx);
    if (value === undefined) throw new InvalidToken('status_index', 'the status list has no such index');
    if (value === STATUS_SUSPENDED) throw new InvalidToken('suspended', 'the token is suspended');
    if (value !== 0) throw new InvalidToken('revoked', 'the token has been revoked');
  }

  return {
    async verify(token, opts = {}) {
      if (typeof token !== 'string' || token === '') throw new InvalidToken('malformed_token', 'the token is malformed');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer,
          audience,
          algorithms,
          typ: 'at+jwt',
          clockTolerance,
          currentDate: new Date(now()),
          requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub', 'jti', 'client_id'],
        }));
      } catch (err) {
        throw tokenError(err, log);
      }
      if (typeof payload.client_id !== 'string' || (payload.scope !== undefined && typeof payload.scope !== 'string')) throw new InvalidToken('claims', 'the token claims are malformed');
      const claims = payload as AccessTokenClaims;
      if (mode === 'enforce') await checkStatus(claims);
      const required = typeof opts.scope === 'string' ? opts.scope.split(' ').filter(Boolean) : (opts.scope ?? []);
      if (required.length) {
        const granted = new Set((claims.scope ?? '').split(' '));
        if (!required.every((s) => granted.has(s))) throw new InsufficientScope(required);
      }
      return claims;
    },
  };
}

/**
 * jose's remote JWKS, refreshed every `maxAgeMs`; when a refresh fails (the issuer unreachable), the
 * last JWKS it fetched stands in for `maxStalenessMs` more, as a status list does — then tokens are
 * refused. (jose keeps its own copy in the `jwksCache` object; its timestamp is wall-clock time.)
 */
function keysWithStaleFallback(url: URL, o: { fetchTimeout: number; fetch: typeof fetch; maxAgeMs: number; maxStalenessMs: number; log: LogFn }): JWTVerifyGetKey {
  const cache = {} as ExportedJWKSCache;
  const remote = createRemoteJWKSet(url, { timeoutDuration: o.fetchTimeout, cacheMaxAge: o.maxAgeMs, [customFetch]: o.fetch, [jwksCache]: cache });
  let staleLogged = false;
  return async (header, token) => {
    try {
      const key = await remote(header, token);
      staleLogged = false;
      return key;
    } catch (err) {
      const code = (err as { code?: string }).code;
      const fetchFailed = code !== 'ERR_JWKS_NO_MATCHING_KEY' && code !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' && code !== 'ERR_JOSE_NOT_SUPPORTED';
      if (!fetchFailed || !cache.jwks || !(Date.now() < cache.uat + o.maxAgeMs + o.maxStalenessMs)) throw err;
      if (!staleLogged) {
        staleLogged = true;
        o.log({ level: 'warn', event: 'keys.stale', message: "the issuer's JWKS cannot be refreshed: using the copy fetched at " + new Date(cache.uat).toISOString(), error: `${code ?? (err as Error).name}: ${(err as Error).message}` });
      }
      return createLocalJWKSet(cache.jwks)(header, token);
    }
  };
}

/** jose's error, as the RFC 6750 answer (the description says which check failed, never the token). */
function tokenError(err: unknown, log: LogFn): InvalidToken {
  const e = err as { code?: string; claim?: string; message?: string };
  const bad = (reason: VerifyReason, description: string) => new InvalidToken(reason, description);
  switch (e?.code) {
    case 'ERR_JWT_EXPIRED':
      return bad('expired', 'the token has expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'iss') return bad('issuer', 'the token is from another issuer');
      if (e.claim === 'aud') return bad('audience', 'the token is not for this audience');
      if (e.claim === 'typ') return bad('type', 'the token is not an access token (typ at+jwt)');
      if (e.claim === 'nbf') return bad('not_yet_valid', 'the token is not yet valid');
      return bad('claims', `the token's ${e.claim ?? ''} claim is missing or invalid`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return bad('algorithm', 'the token is signed with an algorithm not accepted here');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return bad('signature', 'the token signature is invalid');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return bad('unknown_key', "the token is not signed by one of the issuer's keys");
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return bad('malformed_token', 'the token is malformed');
    default:
      // the JWKS could not be fetched (network, timeout, not a JWKS): refuse, and tell the operator
      log({ level: 'error', event: 'keys.unavailable', message: "the issuer's JWKS could not be fetched: refusing tokens", error: `${e?.code ?? (err as Error)?.name}: ${e?.message}` });
      return bad('keys_unavailable', 'the token cannot be verified now');
  }
}

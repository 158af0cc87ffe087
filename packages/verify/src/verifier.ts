// createVerifier: an RFC 9068 access token, verified with jose against the issuer's JWKS with pinned
// algorithms, then (when it carries one) checked against its Token Status List.
import { createLocalJWKSet, createRemoteJWKSet, customFetch, jwksCache, jwtVerify, type ExportedJWKSCache, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { checkDpopProof, MemoryReplayStore, ReplayCacheFull, ReplayKeyQuota, type DpopRequest, type ReplayStore } from './dpop.js';
import { DEFAULT_DPOP_ALGORITHMS, InsufficientScope, InvalidDpopProof, InvalidToken, type Challenge, type VerifyReason } from './errors.js';
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
  /** Algorithms accepted for DPoP proofs (RFC 9449). Default `['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256']` (Ed25519: RFC 9864's name for EdDSA over Ed25519, which openid-client puts in its proofs); `none` and `HS*` are refused. */
  dpopAlgorithms?: string[];
  /** Seconds a DPoP proof is accepted after its `iat` (plus `clockTolerance`). Default 60. */
  dpopMaxAge?: number;
  /** How many proof `jti` the in-memory replay cache holds (each for `dpopMaxAge + clockTolerance` s); when full of live ones, proofs are refused. Default 100000. */
  dpopReplayCacheSize?: number;
  /**
   * How many of those one proof key may hold: past it, that key's proofs are refused
   * (`dpop_replay_quota`) until its oldest expire, and everyone else's still fit. Default
   * `dpopReplayCacheSize / 100` (1000). A key sending R proofs a second needs R × (dpopMaxAge + clockTolerance).
   */
  dpopReplayEntriesPerKey?: number;
  /**
   * Where proof `jti` are remembered, instead of this process's memory: several instances of a
   * resource server behind one URL must share one, or a proof can be replayed at another instance.
   */
  replayStore?: ReplayStore;
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
  /** RFC 9449 §6.1: a DPoP-bound token carries the thumbprint of its key. */
  cnf?: { jkt?: string; [member: string]: unknown };
}

export interface VerifyOptions {
  /** Scopes the token must all carry; otherwise InsufficientScope (403). */
  scope?: string | string[];
  /**
   * The token came with the DPoP scheme (`Authorization: DPoP <token>`): the request's proof,
   * method and URL. Without it the token came as a bearer token, and a DPoP-bound one is refused.
   */
  dpop?: DpopRequest;
}

export interface Verifier {
  /** The token's claims, or a VerifyError (InvalidToken, InvalidDpopProof, InsufficientScope). */
  verify(token: string, options?: VerifyOptions): Promise<AccessTokenClaims>;
  /** The DPoP proof algorithms accepted, for the `algs` of DPoP challenges (absent: the defaults). */
  readonly dpopAlgorithms?: readonly string[];
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
  const dpopAlgorithms = Object.freeze([...(options.dpopAlgorithms ?? DEFAULT_DPOP_ALGORITHMS)]);
  if (dpopAlgorithms.length === 0 || dpopAlgorithms.some((a) => typeof a !== 'string' || a === 'none' || a.startsWith('HS'))) throw new TypeError('dpopAlgorithms must name asymmetric signature algorithms');
  const dpopMaxAge = options.dpopMaxAge ?? 60;
  if (!(dpopMaxAge > 0)) throw new TypeError('dpopMaxAge must be a number of seconds > 0');
  const replayCacheSize = options.dpopReplayCacheSize ?? 100_000;
  if (!Number.isSafeInteger(replayCacheSize) || replayCacheSize < 1) throw new TypeError('dpopReplayCacheSize must be an integer ≥ 1');
  const entriesPerKey = options.dpopReplayEntriesPerKey ?? Math.max(1, Math.floor(replayCacheSize / 100));
  if (!Number.isSafeInteger(entriesPerKey) || entriesPerKey < 1 || entriesPerKey > replayCacheSize) throw new TypeError('dpopReplayEntriesPerKey must be an integer from 1 to dpopReplayCacheSize');
  if (options.replayStore !== undefined && typeof options.replayStore?.seen !== 'function') throw new TypeError('replayStore must have a seen(jti, expiresAt) method');
  const replayStore: ReplayStore = options.replayStore ?? new MemoryReplayStore(replayCacheSize, now, entriesPerKey);
  const dpopPolicy = { algorithms: dpopAlgorithms, maxAge: dpopMaxAge, clockTolerance, now };
  const BEARER: Challenge = { scheme: 'Bearer' };
  const DPOP: Challenge = { scheme: 'DPoP', algs: dpopAlgorithms };

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

  async function checkStatus(claims: AccessTokenClaims, ch: Challenge): Promise<void> {
    const bad = (reason: VerifyReason, description: string) => new InvalidToken(reason, description, ch);
    const status = claims.status as unknown;
    const ref = status && typeof status === 'object' ? (status as { status_list?: unknown }).status_list : undefined;
    if (ref === undefined) {
      if (requireStatus) throw bad('status_missing', 'the token carries no status reference');
      return;
    }
    const { idx, uri } = (ref ?? {}) as { idx?: unknown; uri?: unknown };
    if (typeof idx !== 'number' || !Number.isSafeInteger(idx) || idx < 0 || typeof uri !== 'string') throw bad('claims', 'the status claim is malformed');
    // the list must come from the issuer: a token's claim never sends us to another host
    let u: URL;
    try {
      u = new URL(uri);
    } catch {
      throw bad('status_uri', 'the status list uri is not a URL');
    }
    if (u.origin !== issuerOrigin || u.username || u.password || u.hash) throw bad('status_uri', "the status list uri is not on the issuer's origin");
    let list;
    try {
      list = await lists.get(uri);
    } catch (err) {
      if (err instanceof StatusUnavailable) throw bad('status_unavailable', 'the token status cannot be checked');
      throw err;
    }
    const value = statusAt(list, idx);
    if (value === undefined) throw bad('status_index', 'the status list has no such index');
    if (value === STATUS_SUSPENDED) throw bad('suspended', 'the token is suspended');
    if (value !== 0) throw bad('revoked', 'the token has been revoked');
  }

  /** RFC 9449 §11.1: a proof's jti is recorded once every other check passed, so only an accepted request uses it up. */
  let quotaLoggedAt = -Infinity;
  async function recordProof(jti: string, expiresAt: number, jkt: string): Promise<void> {
    let seen: boolean;
    try {
      seen = await replayStore.seen(jti, expiresAt, jkt);
    } catch (err) {
      if (err instanceof ReplayKeyQuota) {
        // once per proof lifetime at most: the key that hits it sends many
        if (now() - quotaLoggedAt >= (dpopMaxAge + clockTolerance) * 1000) {
          quotaLoggedAt = now();
          log({ level: 'warn', event: 'dpop.replay_key_quota', message: `a DPoP key sent more than ${entriesPerKey} live proofs (dpopReplayEntriesPerKey): refusing its requests until they expire`, jkt });
        }
        throw new InvalidDpopProof('dpop_replay_quota', 'too many DPoP proofs by this key: retry later', dpopAlgorithms);
      }
      const full = err instanceof ReplayCacheFull;
      log({
        level: 'error',
        event: full ? 'dpop.replay_cache_full' : 'dpop.replay_store_unavailable',
        message: full ? 'the DPoP replay cache is full of live proofs: refusing DPoP requests (raise dpopReplayCacheSize or use a replayStore)' : 'the DPoP replay store failed: refusing DPoP requests',
        error: `${(err as Error)?.name}: ${(err as Error)?.message}`,
      });
      throw new InvalidDpopProof('dpop_replay_unavailable', 'the DPoP proof cannot be checked now', dpopAlgorithms);
    }
    if (seen) throw new InvalidDpopProof('dpop_replay', 'the DPoP proof has been used before', dpopAlgorithms);
  }

  return {
    dpopAlgorithms,
    async verify(token, opts = {}) {
      // the answer's challenge is the scheme the client used (RFC 9449 §7.1)
      const ch = opts.dpop ? DPOP : BEARER;
      if (typeof token !== 'string' || token === '') throw new InvalidToken('malformed_token', 'the token is malformed', ch);
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
        throw tokenError(err, log, ch);
      }
      const cnf = payload.cnf as { jkt?: unknown } | undefined;
      if (
        typeof payload.client_id !== 'string' ||
        (payload.scope !== undefined && typeof payload.scope !== 'string') ||
        (cnf !== undefined && (cnf === null || typeof cnf !== 'object' || Array.isArray(cnf) || (cnf.jkt !== undefined && (typeof cnf.jkt !== 'string' || cnf.jkt === ''))))
      ) {
        throw new InvalidToken('claims', 'the token claims are malformed', ch);
      }
      const claims = payload as AccessTokenClaims;
      const jkt = claims.cnf?.jkt;
      // RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is refused (no downgrade)
      if (jkt !== undefined && !opts.dpop) throw new InvalidToken('dpop_bound', 'the token is DPoP-bound: send it with the DPoP scheme and a DPoP proof', DPOP);
      // RFC 9449 §7.1: the DPoP scheme is for DPoP-bound tokens
      if (jkt === undefined && opts.dpop) throw new InvalidToken('not_dpop_bound', 'the token is not DPoP-bound: send it with the Bearer scheme', DPOP);
      const proof = jkt !== undefined && opts.dpop ? await checkDpopProof(opts.dpop, token, jkt, dpopPolicy) : undefined;
      if (mode === 'enforce') await checkStatus(claims, ch);
      const required = typeof opts.scope === 'string' ? opts.scope.split(' ').filter(Boolean) : (opts.scope ?? []);
      if (required.length) {
        const granted = new Set((claims.scope ?? '').split(' '));
        if (!required.every((s) => granted.has(s))) throw new InsufficientScope(required, ch);
      }
      if (proof) await recordProof(proof.jti, proof.expiresAt, jkt!);
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
function tokenError(err: unknown, log: LogFn, ch: Challenge): InvalidToken {
  const e = err as { code?: string; claim?: string; message?: string };
  const bad = (reason: VerifyReason, description: string) => new InvalidToken(reason, description, ch);
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

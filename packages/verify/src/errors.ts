// Errors a resource server answers with, named after their RFC 6750 §3.1 and RFC 9449 §7.1 codes.
// Only `error`, `error_description` (and `scope` for insufficient_scope) leave the resource server.

export type BearerErrorCode = 'invalid_token' | 'invalid_request' | 'insufficient_scope';
/** The codes of RFC 6750 §3.1, and `invalid_dpop_proof` (RFC 9449 §7.1). */
export type VerifyErrorCode = BearerErrorCode | 'invalid_dpop_proof';

/** The DPoP proof algorithms accepted by default (those the Latchkey server accepts). */
export const DEFAULT_DPOP_ALGORITHMS: readonly string[] = Object.freeze(['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256']);

/** Why a DPoP proof was refused: each is an `invalid_dpop_proof` (RFC 9449 §4.3 lists the checks). */
export type DpopProofReason =
  | 'dpop_missing'
  | 'dpop_multiple'
  | 'dpop_malformed'
  | 'dpop_type'
  | 'dpop_algorithm'
  | 'dpop_key'
  | 'dpop_signature'
  | 'dpop_claims'
  | 'dpop_method'
  | 'dpop_url'
  | 'dpop_iat'
  | 'dpop_ath'
  | 'dpop_binding'
  | 'dpop_replay'
  | 'dpop_replay_quota'
  | 'dpop_replay_unavailable';

/**
 * Why a token was refused, for logs and metrics (never sent to the client as such). Each maps to one
 * code: `missing_token` and `malformed_header` to invalid_request, `insufficient_scope` to
 * insufficient_scope, the `dpop_*` reasons of DpopProofReason to invalid_dpop_proof, everything else
 * (`dpop_bound` and `not_dpop_bound` included) to invalid_token.
 */
export type VerifyReason =
  | 'missing_token'
  | 'malformed_header'
  | 'malformed_token'
  | 'signature'
  | 'unknown_key'
  | 'algorithm'
  | 'type'
  | 'issuer'
  | 'audience'
  | 'expired'
  | 'not_yet_valid'
  | 'claims'
  | 'keys_unavailable'
  | 'status_missing'
  | 'status_uri'
  | 'status_index'
  | 'revoked'
  | 'suspended'
  | 'status_unavailable'
  | 'insufficient_scope'
  /** a DPoP-bound token (`cnf.jkt`) presented as a bearer token (RFC 9449 §7.2) */
  | 'dpop_bound'
  /** a token without `cnf.jkt` presented with the DPoP scheme (RFC 9449 §7.1) */
  | 'not_dpop_bound'
  | DpopProofReason;

// RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no `"` nor `\`)
function quotable(s: string): string {
  return s.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, ' ');
}

/**
 * Which challenge an error answers with: `Bearer` (RFC 6750), or `DPoP` with the accepted proof
 * algorithms (RFC 9449 §7.1) — the scheme the client used, or DPoP for a bound token.
 */
export type Challenge = { scheme: 'Bearer' } | { scheme: 'DPoP'; algs: readonly string[] };

const BEARER: Challenge = { scheme: 'Bearer' };

function challengeHeader(c: Challenge, params: Array<[string, string]>): string {
  const all = c.scheme === 'DPoP' ? [...params, ['algs', quotable(c.algs.join(' '))] as [string, string]] : params;
  return all.length ? `${c.scheme} ${all.map(([k, v]) => `${k}="${v}"`).join(', ')}` : c.scheme;
}

export class VerifyError extends Error {
  readonly error: VerifyErrorCode;
  /** The HTTP status to answer with: 401, 400 or 403. */
  readonly status: number;
  readonly reason: VerifyReason;
  readonly description: string;
  /** The value of the `WWW-Authenticate` response header. */
  readonly wwwAuthenticate: string;

  constructor(error: VerifyErrorCode, status: number, reason: VerifyReason, description: string, challenge?: string) {
    super(description);
    this.name = new.target.name;
    this.error = error;
    this.status = status;
    this.reason = reason;
    this.description = quotable(description);
    this.wwwAuthenticate = challenge ?? `Bearer error="${error}", error_description="${this.description}"`;
  }

  /** The JSON body of the answer. */
  toJSON(): { error: VerifyErrorCode; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

/** 401: the token is expired, revoked, malformed, or was not issued for this resource server. */
export class InvalidToken extends VerifyError {
  declare readonly error: 'invalid_token';
  constructor(reason: VerifyReason, description: string, challenge: Challenge = BEARER) {
    super('invalid_token', 401, reason, description, challengeHeader(challenge, [['error', 'invalid_token'], ['error_description', quotable(description)]]));
  }
}

/**
 * A request with no access token: 401 with bare challenges (RFC 6750 §3.1: "If the request lacks
 * any authentication information … the resource server SHOULD NOT include an error code") — `Bearer`,
 * and `DPoP algs="…"` when DPoP algorithms are given (RFC 9449 §7.1); or 400 for an Authorization
 * header that is not a well-formed credential of its scheme.
 */
export class InvalidRequest extends VerifyError {
  declare readonly error: 'invalid_request';
  declare readonly reason: 'missing_token' | 'malformed_header';
  /**
   * @param dpop for missing_token: the DPoP algorithms to offer beside Bearer; for malformed_header:
   * the challenge of the scheme the client used (default Bearer).
   */
  constructor(reason: 'missing_token' | 'malformed_header', description: string, dpop?: readonly string[] | Challenge) {
    let header: string;
    if (reason === 'missing_token') {
      const algs = Array.isArray(dpop) ? dpop : undefined;
      header = algs ? `Bearer, ${challengeHeader({ scheme: 'DPoP', algs }, [])}` : 'Bearer';
    } else {
      const c = dpop && !Array.isArray(dpop) ? (dpop as Challenge) : BEARER;
      header = challengeHeader(c, [['error', 'invalid_request'], ['error_description', quotable(description)]]);
    }
    super('invalid_request', reason === 'missing_token' ? 401 : 400, reason, description, header);
  }
}

/** 403: a valid token without a scope the route requires. */
export class InsufficientScope extends VerifyError {
  declare readonly error: 'insufficient_scope';
  readonly scope: string;
  constructor(required: string[], challenge: Challenge = BEARER) {
    const scope = quotable(required.join(' '));
    const description = `the token lacks the scope ${scope}`;
    super('insufficient_scope', 403, 'insufficient_scope', description, challengeHeader(challenge, [['error', 'insufficient_scope'], ['error_description', description], ['scope', scope]]));
    this.scope = scope;
  }
}

/**
 * 401 (RFC 9449 §7.1): the DPoP proof that came with a DPoP-bound token is missing, malformed, or
 * fails one of the checks of §4.3 (`reason` says which); `WWW-Authenticate: DPoP
 * error="invalid_dpop_proof", error_description="…", algs="…"`.
 */
export class InvalidDpopProof extends VerifyError {
  declare readonly error: 'invalid_dpop_proof';
  declare readonly reason: DpopProofReason;
  constructor(reason: DpopProofReason, description: string, algs: readonly string[] = DEFAULT_DPOP_ALGORITHMS) {
    super('invalid_dpop_proof', 401, reason, description, challengeHeader({ scheme: 'DPoP', algs }, [['error', 'invalid_dpop_proof'], ['error_description', quotable(description)]]));
  }
}

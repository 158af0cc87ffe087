// The error model: one class per RFC error code. Only `error`, `error_description` (and `state`
// on redirects) ever leave the server; never a stack trace.

export class OAuthError extends Error {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  constructor(
    readonly error: string,
    readonly description: string,
    opts: { status?: number; headers?: Record<string, string> } = {},
  ) {
    super(description);
    this.statusCode = opts.status ?? 400;
    this.headers = opts.headers ?? {};
  }
  toJSON(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

// RFC 6749 §5.2 / §4.1.2.1
export class InvalidRequest extends OAuthError {
  constructor(d = 'the request is malformed') { super('invalid_request', d); }
}
export class InvalidClient extends OAuthError {
  override readonly statusCode = 401;
  override readonly headers: Record<string, string>;
  constructor(d = 'client authentication failed', scheme = 'Basic') {
    super('invalid_client', d);
    this.headers = { 'www-authenticate': `${scheme} realm="latchkey"` };
  }
}
export class InvalidGrant extends OAuthError {
  constructor(d = 'the grant is invalid, expired or revoked') { super('invalid_grant', d); }
}
export class UnauthorizedClient extends OAuthError {
  constructor(d = 'the client may not use this grant') { super('unauthorized_client', d); }
}
export class UnsupportedGrantType extends OAuthError {
  constructor(d = 'the grant type is not supported') { super('unsupported_grant_type', d); }
}
export class UnsupportedResponseType extends OAuthError {
  constructor(d = 'the response type is not supported') { super('unsupported_response_type', d); }
}
export class InvalidScope extends OAuthError {
  constructor(d = 'the requested scope is invalid') { super('invalid_scope', d); }
}
export class AccessDenied extends OAuthError {
  override readonly statusCode: number = 403;
  constructor(d = 'access denied') { super('access_denied', d); }
}
export class ServerError extends OAuthError {
  override readonly statusCode = 500;
  constructor(d = 'internal error') { super('server_error', d); }
}
export class TemporarilyUnavailable extends OAuthError {
  override readonly statusCode = 503;
  override readonly headers: Record<string, string>;
  constructor(d = 'temporarily unavailable', retryAfter = 1) {
    super('temporarily_unavailable', d);
    this.headers = { 'retry-after': String(retryAfter) };
  }
}
export class TooManyFailures extends OAuthError {
  override readonly statusCode = 429;
  override readonly headers: Record<string, string>;
  constructor(d = 'too many failed attempts', retryAfter = 60) {
    // RFC 6749 defines no rate-limit code; temporarily_unavailable (§4.1.2.1) is the closest
    super('temporarily_unavailable', d);
    this.headers = { 'retry-after': String(retryAfter) };
  }
}
// RFC 8707 §2
export class InvalidTarget extends OAuthError {
  constructor(d = 'the requested resource is not allowed') { super('invalid_target', d); }
}
// RFC 7009 §2.2.1
export class UnsupportedTokenType extends OAuthError {
  constructor(d = 'the token type is not supported') { super('unsupported_token_type', d); }
}
// OIDC Core §3.1.2.6
export class LoginRequired extends OAuthError {
  constructor(d = 'the user is not logged in') { super('login_required', d); }
}
export class ConsentRequired extends OAuthError {
  constructor(d = 'consent is required') { super('consent_required', d); }
}
export class InteractionRequired extends OAuthError {
  constructor(d = 'interaction is required') { super('interaction_required', d); }
}
// RFC 6750 §3.1
export class InvalidToken extends OAuthError {
  override readonly statusCode = 401;
  override readonly headers: Record<string, string>;
  constructor(d = 'the access token is invalid') {
    super('invalid_token', d);
    this.headers = { 'www-authenticate': `Bearer realm="latchkey", error="invalid_token", error_description="${d.replace(/"/g, "'")}"` };
  }
}
export class InsufficientScope extends OAuthError {
  override readonly statusCode = 403;
  override readonly headers: Record<string, string>;
  constructor(d = 'the access token lacks the required scope', scope = '') {
    super('insufficient_scope', d);
    this.headers = { 'www-authenticate': `Bearer realm="latchkey", error="insufficient_scope"${scope ? `, scope="${scope}"` : ''}` };
  }
}
export class NotFound extends OAuthError {
  override readonly statusCode = 404;
  constructor(d = 'not found') { super('not_found', d); }
}
// RFC 9101 §6.3 (request objects), OIDC Core §3.1.2.6, RFC 9126 §2.3
export class InvalidRequestObject extends OAuthError {
  constructor(d = 'the request object is invalid') { super('invalid_request_object', d); }
}
export class InvalidRequestUri extends OAuthError {
  constructor(d = 'the request_uri is invalid, expired or was already used') { super('invalid_request_uri', d); }
}
// OpenID Connect Unmet Authentication Requirements 1.0
export class UnmetAuthenticationRequirements extends OAuthError {
  constructor(d = 'the requested authentication requirements cannot be met') { super('unmet_authentication_requirements', d); }
}
// RFC 9449 §7.1, §12.2: a DPoP proof that cannot be accepted. 400 at the token and PAR endpoints;
// at a resource endpoint 401 with a DPoP challenge naming the algorithms we accept.
export const DPOP_CHALLENGE_ALGS = 'ES256 EdDSA Ed25519 RS256 PS256';
const dpopChallenge = (error: string, d: string): string => `DPoP error="${error}", error_description="${d.replace(/"/g, "'")}", algs="${DPOP_CHALLENGE_ALGS}"`;
export class InvalidDpopProof extends OAuthError {
  override readonly statusCode: number;
  override readonly headers: Record<string, string>;
  constructor(d = 'the DPoP proof is invalid', atResource = false) {
    super('invalid_dpop_proof', d);
    this.statusCode = atResource ? 401 : 400;
    this.headers = atResource ? { 'www-authenticate': dpopChallenge('invalid_dpop_proof', d) } : {};
  }
}
// RFC 9449 §8: the proof must carry the server's nonce; the current one is in DPoP-Nonce
export class UseDpopNonce extends OAuthError {
  override readonly statusCode: number;
  override readonly headers: Record<string, string>;
  constructor(nonce: string, d = 'the DPoP proof must carry the server nonce', atResource = false) {
    super('use_dpop_nonce', d);
    this.statusCode = atResource ? 401 : 400;
    this.headers = { 'dpop-nonce': nonce, ...(atResource ? { 'www-authenticate': dpopChallenge('use_dpop_nonce', d) } : {}) };
  }
}
/** An invalid_token answer to a request that used the DPoP scheme (RFC 9449 §7.1): a DPoP challenge. */
export class InvalidDpopToken extends OAuthError {
  override readonly statusCode = 401;
  override readonly headers: Record<string, string>;
  constructor(d = 'the access token is invalid') {
    super('invalid_token', d);
    this.headers = { 'www-authenticate': dpopChallenge('invalid_token', d) };
  }
}

// Errors a resource server answers with, named after their RFC 6750 §3.1 codes. Only `error`,
// `error_description` (and `scope` for insufficient_scope) leave the resource server.

export type BearerErrorCode = 'invalid_token' | 'invalid_request' | 'insufficient_scope';

/**
 * Why a token was refused, for logs and metrics (never sent to the client as such). Each maps to one
 * RFC 6750 code: `missing_token` and `malformed_header` to invalid_request, `insufficient_scope` to
 * insufficient_scope, everything else to invalid_token.
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
  | 'insufficient_scope';

// RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no `"` nor `\`)
function quotable(s: string): string {
  return s.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, ' ');
}

export class VerifyError extends Error {
  readonly error: BearerErrorCode;
  /** The HTTP status to answer with: 401, 400 or 403. */
  readonly status: number;
  readonly reason: VerifyReason;
  readonly description: string;
  /** The value of the `WWW-Authenticate` response header. */
  readonly wwwAuthenticate: string;

  constructor(error: BearerErrorCode, status: number, reason: VerifyReason, description: string, challenge?: string) {
    super(description);
    this.name = new.target.name;
    this.error = error;
    this.status = status;
    this.reason = reason;
    this.description = quotable(description);
    this.wwwAuthenticate = challenge ?? `Bearer error="${error}", error_description="${this.description}"`;
  }

  /** The JSON body of the answer. */
  toJSON(): { error: BearerErrorCode; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

/** 401: the token is expired, revoked, malformed, or was not issued for this resource server. */
export class InvalidToken extends VerifyError {
  constructor(reason: VerifyReason, description: string) {
    super('invalid_token', 401, reason, description);
  }
}

/**
 * A request with no bearer token: 401 with a bare `Bearer` challenge (RFC 6750 §3.1: "If the
 * request lacks any authentication information … the resource server SHOULD NOT include an error
 * code"); or 400 for an Authorization header that is not a well-formed bearer credential.
 */
export class InvalidRequest extends VerifyError {
  constructor(reason: 'missing_token' | 'malformed_header', description: string) {
    super('invalid_request', reason === 'missing_token' ? 401 : 400, reason, description, reason === 'missing_token' ? 'Bearer' : undefined);
  }
}

/** 403: a valid token without a scope the route requires. */
export class InsufficientScope extends VerifyError {
  readonly scope: string;
  constructor(required: string[]) {
    const scope = quotable(required.join(' '));
    const description = `the token lacks the scope ${scope}`;
    super('insufficient_scope', 403, 'insufficient_scope', description, `Bearer error="insufficient_scope", error_description="${description}", scope="${scope}"`);
    this.scope = scope;
  }
}

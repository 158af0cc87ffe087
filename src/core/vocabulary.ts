// Scope rules. RFC 6749 §3.3: scope tokens are %x21 / %x23-5B / %x5D-7E, space-separated.

export const ADMIN_SCOPE = 'latchkey:admin';
/** Scopes that `--scopes` cannot grant; they come only with dedicated flags. */
export const RESERVED_SCOPES: ReadonlySet<string> = new Set([ADMIN_SCOPE]);
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;
/** Scopes that only make sense with a user (not granted to client_credentials). */
export const USER_SCOPES: ReadonlySet<string> = new Set(OIDC_SCOPES);

/** Client authentication methods at the token endpoint (RFC 7591 §2 names). */
export const TOKEN_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type TokenAuthMethod = (typeof TOKEN_AUTH_METHODS)[number];
/** The grant types a client may be registered for. */
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];
/** DPoP proof algorithms (RFC 9449): asymmetric only, never `none` or a MAC. */
export const DPOP_ALGS = ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'] as const;
/** Algorithms of private_key_jwt client assertions. */
export const CLIENT_ASSERTION_ALGS = ['ES256', 'ES384', 'EdDSA', 'RS256', 'PS256'];

/** Our ids (users, families, clients' internal rows) are UUIDs. */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID_RE.test(s);

export function isValidScopeToken(s: string): boolean {
  return s.length > 0 && s.length <= 128 && /^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s);
}

/** Parse a scope parameter; undefined when malformed. */
export function parseScope(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return [];
  const parts = raw.split(' ').filter((s) => s.length > 0);
  if (!parts.every(isValidScopeToken)) return undefined;
  return [...new Set(parts)];
}

export const formatScope = (scopes: readonly string[]): string => scopes.join(' ');

// Scope rules. RFC 6749 §3.3: scope tokens are %x21 / %x23-5B / %x5D-7E, space-separated.

export const ADMIN_SCOPE = 'latchkey:admin';
/** Scopes that `--scopes` cannot grant; they come only with dedicated flags. */
export const RESERVED_SCOPES: ReadonlySet<string> = new Set([ADMIN_SCOPE]);
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

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

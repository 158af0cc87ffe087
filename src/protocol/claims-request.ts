// The `claims` request parameter (OIDC Core §5.5): individual claims asked for the ID token and
// the userinfo response, `essential`, and `value`/`values` (used for `acr`). Claims we do not
// know are ignored (§5.5: "an OP MUST ignore claims it does not understand").
import { SUPPORTED_ACR_VALUES } from '../core/acr.js';

export type { ClaimSpec, ClaimsRequest } from '../core/model.js';
import type { ClaimSpec, ClaimsRequest } from '../core/model.js';

/** The user claims that can be asked for by name (what userClaims can release). */
export const REQUESTABLE_USER_CLAIMS = ['name', 'email', 'email_verified'];
const UNDERSTOOD = new Set(['sub', 'auth_time', 'acr', 'amr', ...REQUESTABLE_USER_CLAIMS]);

function spec(v: unknown): ClaimSpec | null | undefined {
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const out: ClaimSpec = {};
  if (o.essential !== undefined) {
    if (typeof o.essential !== 'boolean') return undefined;
    out.essential = o.essential;
  }
  if (o.value !== undefined) {
    if (typeof o.value !== 'string') return undefined;
    out.value = o.value;
  }
  if (o.values !== undefined) {
    if (!Array.isArray(o.values) || !o.values.every((x) => typeof x === 'string')) return undefined;
    out.values = o.values as string[];
  }
  return out;
}

/** Parse the JSON text of the parameter; undefined when it is not a valid claims request. */
export function parseClaimsRequest(raw: string): ClaimsRequest | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const out: ClaimsRequest = {};
  for (const member of ['userinfo', 'id_token'] as const) {
    const m = (parsed as Record<string, unknown>)[member];
    if (m === undefined || m === null) continue;
    if (typeof m !== 'object' || Array.isArray(m)) return undefined;
    const claims: Record<string, ClaimSpec | null> = {};
    for (const [name, v] of Object.entries(m as Record<string, unknown>)) {
      const s = spec(v);
      if (s === undefined) return undefined;
      if (UNDERSTOOD.has(name)) claims[name] = s;
    }
    out[member] = claims;
  }
  return out;
}

/** The user claims asked for by name in one member of the request. */
export function requestedUserClaims(claims: ClaimsRequest | undefined, member: 'userinfo' | 'id_token'): string[] {
  const m = claims?.[member];
  return m ? Object.keys(m).filter((c) => REQUESTABLE_USER_CLAIMS.includes(c)) : [];
}

/** OIDC Core §5.5.1.1: an essential `acr` whose values we cannot meet (unmet_authentication_requirements). */
export function unmetEssentialAcr(claims: ClaimsRequest | undefined): boolean {
  for (const member of ['id_token', 'userinfo'] as const) {
    const acr = claims?.[member]?.acr;
    if (!acr || !acr.essential) continue;
    const wanted = acr.values ?? (acr.value !== undefined ? [acr.value] : undefined);
    if (wanted && !wanted.some((v) => SUPPORTED_ACR_VALUES.includes(v))) return true;
  }
  return false;
}

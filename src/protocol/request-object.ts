// Request objects (RFC 9101, JAR; OIDC Core §6.1): a JWT signed by the client with a key of its
// registered JWKS, algorithms pinned, `iss` = the client, `aud` = our issuer, short-lived. The
// header chooses nothing: keys come only from the client's registration (never `jku`, `x5u` or an
// embedded `jwk`), and unsigned objects (`alg: none`) are refused by the pinned list.
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { isStorableText } from '../core/storable-text.js';
import type { Client } from '../core/model.js';
import { CLIENT_ASSERTION_ALGS } from './client-jwks.js';
import { UnsafeRequestError, type RawParams } from './authorization-request.js';

export const REQUEST_OBJECT_ALGS = CLIENT_ASSERTION_ALGS;
/** RFC 9101 §10.2 / FAPI 2.0: a request object lives at most 10 minutes. */
export const MAX_REQUEST_OBJECT_LIFETIME = 600;
export const MAX_REQUEST_OBJECT_LENGTH = 16_384;
// RFC 9101 §4: `oauth-authz-req+jwt`; older clients send `JWT` or nothing
const ACCEPTED_TYP = new Set([undefined, 'oauth-authz-req+jwt', 'jwt']);
// registered claims of the JWT that are not authorization request parameters
const JWT_CLAIMS = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'jti', 'sub']);

export interface RequestObjectDeps {
  issuer: string;
  now: Date;
  leeway: number;
}

const invalid = (d: string) => new UnsafeRequestError('invalid_request_object', d);

/** Every member name and string value, at any depth (at most 32 levels), is storable text. */
function storableTree(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return isStorableText(value);
  if (value === null || typeof value !== 'object') return true;
  if (depth >= 32) return false;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (!isStorableText(k) || !storableTree(v, depth + 1)) return false;
  }
  return true;
}

export async function openRequestObject(jwt: string, client: Client, deps: RequestObjectDeps): Promise<RawParams> {
  if (!client.jwks) throw invalid('the client has no registered keys to verify a request object');
  if (jwt.length > MAX_REQUEST_OBJECT_LENGTH) throw invalid('the request object is too large');
  let payload: Record<string, unknown>;
  let typ: string | undefined;
  try {
    const r = await jwtVerify(jwt, createLocalJWKSet(client.jwks as unknown as JSONWebKeySet), {
      algorithms: REQUEST_OBJECT_ALGS,
      issuer: client.clientId,
      audience: deps.issuer,
      currentDate: deps.now,
      clockTolerance: deps.leeway,
      requiredClaims: ['iss', 'aud', 'exp'],
    });
    payload = r.payload as Record<string, unknown>;
    typ = r.protectedHeader.typ?.toLowerCase();
  } catch {
    throw invalid('the request object signature or claims are invalid');
  }
  if (!ACCEPTED_TYP.has(typ)) throw invalid('the request object has the wrong typ');
  // its members are stored (PAR) and echoed as text and jsonb: Postgres stores neither NUL nor a lone surrogate
  if (!storableTree(payload)) throw invalid('the request object holds text that cannot be stored (NUL or a lone surrogate) or is nested too deep');
  const nowSec = Math.floor(deps.now.getTime() / 1000);
  const exp = payload.exp as number;
  const start = typeof payload.nbf === 'number' ? payload.nbf : typeof payload.iat === 'number' ? payload.iat : nowSec;
  if (exp - start > MAX_REQUEST_OBJECT_LIFETIME || exp > nowSec + MAX_REQUEST_OBJECT_LIFETIME + deps.leeway) throw invalid('the request object lives longer than 10 minutes');

  const params: RawParams = {};
  for (const [k, v] of Object.entries(payload)) {
    if (JWT_CLAIMS.has(k)) continue;
    if (typeof v === 'string') params[k] = v;
    else if (typeof v === 'number' && Number.isInteger(v) && k === 'max_age') params[k] = String(v);
    // OIDC Core §6.1: `claims` is a JSON object inside a request object
    else if (k === 'claims' && v && typeof v === 'object' && !Array.isArray(v)) params[k] = JSON.stringify(v);
    else if (k === 'resource' && Array.isArray(v) && v.every((x) => typeof x === 'string')) params[k] = v.length === 1 ? v[0] : (v as string[]);
    else throw invalid(`the request object member ${k.slice(0, 40)} has an unsupported type`);
  }
  return params;
}

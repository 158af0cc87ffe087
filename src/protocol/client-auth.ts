// Client authentication at the back-channel endpoints (RFC 6749 §2.3, RFC 7523 private_key_jwt,
// OIDC Core §9): exactly one method per request; secrets compared by digest in constant time;
// assertions verified against the client's registered keys with pinned algorithms, `jti` replay
// refused, and `aud` exactly the issuer (draft-ietf-oauth-rfc7523bis: no endpoint URLs, no
// array carrying other audiences, which an assertion made for another server could).
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import type { Kysely } from 'kysely';
import { recordAssertionJti } from '../store/client-assertions.js';
import type { Database } from '../db/types.js';
import type { Client } from '../core/model.js';
import { InvalidClient, InvalidRequest } from '../core/errors.js';
import { matchesDigest } from '../core/crypto.js';
import { CLIENT_ASSERTION_ALGS } from './client-jwks.js';
import { isStorableText } from '../core/storable-text.js';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const MAX_ASSERTION_LIFETIME = 300;

export interface ClientCredentials {
  method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';
  clientId: string;
  secret?: string;
  assertion?: string;
}

/**
 * A client id decoded from Basic (percent-decoding can make a NUL) or read from an unverified
 * assertion's `sub` never went through the input check: one Postgres cannot store is no client.
 */
function storableId(c: ClientCredentials): ClientCredentials {
  if (!isStorableText(c.clientId)) throw new InvalidClient('malformed client_id');
  return c;
}

/** Which client, by which method (no verification yet). Throws InvalidRequest / InvalidClient. */
export function extractClientCredentials(authorization: string | undefined, params: Record<string, string | undefined>): ClientCredentials {
  const methods: ClientCredentials[] = [];
  if (authorization !== undefined) {
    const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(authorization.trim());
    if (!m) throw new InvalidClient('malformed Authorization header');
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new InvalidClient('malformed Authorization header');
    let id: string;
    let secret: string;
    try {
      // RFC 6749 §2.3.1: both parts are form-urlencoded
      id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
      secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    } catch {
      throw new InvalidClient('malformed Authorization header');
    }
    methods.push({ method: 'client_secret_basic', clientId: id, secret });
  }
  if (params.client_secret !== undefined) {
    if (!params.client_id) throw new InvalidRequest('client_secret without client_id');
    methods.push({ method: 'client_secret_post', clientId: params.client_id, secret: params.client_secret });
  }
  if (params.client_assertion !== undefined || params.client_assertion_type !== undefined) {
    if (params.client_assertion_type !== JWT_BEARER_ASSERTION) throw new InvalidRequest('unsupported client_assertion_type');
    if (!params.client_assertion) throw new InvalidRequest('client_assertion is missing');
    let sub: string | undefined;
    try {
      sub = decodeJwt(params.client_assertion).sub;
    } catch {
      throw new InvalidClient('malformed client assertion');
    }
    const id = params.client_id ?? sub;
    if (!id) throw new InvalidClient('the client assertion names no client');
    methods.push({ method: 'private_key_jwt', clientId: id, assertion: params.client_assertion });
  }
  if (methods.length > 1) throw new InvalidRequest('more than one client authentication method');
  if (methods.length === 1) {
    const c = methods[0]!;
    if (params.client_id !== undefined && params.client_id !== c.clientId) throw new InvalidRequest('client_id does not match the authenticated client');
    return storableId(c);
  }
  if (params.client_id) return storableId({ method: 'none', clientId: params.client_id });
  throw new InvalidClient('client authentication is required');
}

export interface VerifyClientDeps {
  db: Kysely<Database>;
  issuer: string;
  now: Date;
  leeway: number;
}

/** rfc7523bis: `aud` is the issuer as a string, or an array whose only value is the issuer. */
function isExactlyIssuer(aud: unknown, issuer: string): boolean {
  if (typeof aud === 'string') return aud === issuer;
  return Array.isArray(aud) && aud.length === 1 && aud[0] === issuer;
}

/** Verify the credentials against the registered client; throws InvalidClient on any mismatch. */
export async function verifyClient(client: Client | undefined, cred: ClientCredentials, deps: VerifyClientDeps): Promise<Client> {
  if (!client) throw new InvalidClient();
  switch (cred.method) {
    case 'none':
      if (!client.isPublic) throw new InvalidClient('this client must authenticate');
      return client;
    case 'client_secret_basic':
    case 'client_secret_post':
      if (client.isPublic || !client.secretDigest) throw new InvalidClient();
      if (client.authMethod && client.authMethod !== cred.method) throw new InvalidClient(`this client is registered for ${client.authMethod}`);
      if (!matchesDigest(cred.secret ?? '', client.secretDigest)) throw new InvalidClient();
      return client;
    case 'private_key_jwt': {
      if (client.authMethod !== 'private_key_jwt' || !client.jwks) throw new InvalidClient('this client is not registered for private_key_jwt');
      const nowSec = Math.floor(deps.now.getTime() / 1000);
      let payload;
      try {
        ({ payload } = await jwtVerify(cred.assertion!, createLocalJWKSet(client.jwks as unknown as JSONWebKeySet), {
          algorithms: CLIENT_ASSERTION_ALGS,
          issuer: client.clientId,
          subject: client.clientId,
          currentDate: deps.now,
          clockTolerance: deps.leeway,
          requiredClaims: ['exp', 'jti', 'iss', 'sub', 'aud'],
        }));
      } catch {
        throw new InvalidClient('the client assertion is invalid');
      }
      if (!isExactlyIssuer(payload.aud, deps.issuer)) throw new InvalidClient('the client assertion audience must be exactly the issuer');
      if (payload.exp! > nowSec + MAX_ASSERTION_LIFETIME + deps.leeway) throw new InvalidClient('the client assertion lives too long');
      if (typeof payload.jti !== 'string' || payload.jti.length > 200) throw new InvalidClient('the client assertion needs a jti');
      // signed by the client, yet a NUL would fail the insert below (a 500), and the driver would store a lone surrogate as U+FFFD, merging distinct jtis
      if (!isStorableText(payload.jti)) throw new InvalidClient('malformed jti');
      // replay: a jti is accepted once per client until the assertion expires
      if (!(await recordAssertionJti(deps.db, client.clientId, payload.jti, new Date((payload.exp! + deps.leeway) * 1000)))) throw new InvalidClient('the client assertion was already used');
      return client;
    }
  }
}

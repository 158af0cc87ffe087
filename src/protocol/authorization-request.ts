// Validation of an authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 7636, RFC 8707),
// framework-free. Errors before the client and redirect URI are verified are never redirected
// (RFC 6749 §4.1.2.1); every later one is.
import type { Client } from '../store/clients.js';
import { InvalidRequest, InvalidScope, InvalidTarget, OAuthError, UnauthorizedClient, UnsupportedResponseType } from '../errors.js';
import { matchRedirectUri } from './redirect-uri.js';
import { isValidChallenge } from './pkce.js';
import { parseScope } from './scopes.js';

export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  scopes: string[];
  state?: string;
  nonce?: string;
  codeChallenge?: string;
  prompt: string[];
  maxAge?: number;
  loginHint?: string;
  resources: string[];
}

export type RawParams = Record<string, string | string[] | undefined>;

/** An error that must be shown on our own page, never redirected. */
export class UnsafeRequestError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

/** An error to send back to the (verified) redirect URI. */
export class RedirectError extends Error {
  constructor(
    readonly oauth: OAuthError,
    readonly redirectUri: string,
    readonly state: string | undefined,
  ) {
    super(oauth.description);
  }
}

const MAX_PARAM = 2048;

function single(params: RawParams, name: string): string | undefined {
  const v = params[name];
  if (Array.isArray(v)) return undefined;
  // RFC 6749 §3.1: parameters sent without a value are treated as omitted
  return v === undefined || v === '' ? undefined : v;
}

export function repeatedParams(params: RawParams): string[] {
  return Object.entries(params)
    .filter(([k, v]) => Array.isArray(v) && k !== 'resource')
    .map(([k]) => k);
}

export interface ValidateOptions {
  pkceRequired: boolean;
  findClient: (clientId: string) => Promise<Client | undefined>;
}

export async function validateAuthorizationRequest(params: RawParams, opts: ValidateOptions): Promise<{ request: AuthorizationRequest; client: Client }> {
  const repeated = repeatedParams(params);
  if (Array.isArray(params.client_id)) throw new UnsafeRequestError('invalid_request', 'client_id is repeated');
  const clientId = single(params, 'client_id');
  if (!clientId) throw new UnsafeRequestError('invalid_request', 'client_id is missing');
  if (clientId.length > 200) throw new UnsafeRequestError('invalid_client', 'unknown client');
  const client = await opts.findClient(clientId);
  if (!client) throw new UnsafeRequestError('invalid_client', 'unknown client');

  if (Array.isArray(params.redirect_uri)) throw new UnsafeRequestError('invalid_request', 'redirect_uri is repeated');
  let redirectUri = single(params, 'redirect_uri');
  if (!redirectUri) {
    // OIDC requires redirect_uri; plain OAuth may omit it when exactly one is registered
    if (client.redirectUris.length === 1 && !(single(params, 'scope') ?? '').split(' ').includes('openid')) redirectUri = client.redirectUris[0]!;
    else throw new UnsafeRequestError('invalid_request', 'redirect_uri is missing');
  }
  if (redirectUri.length > MAX_PARAM || !matchRedirectUri(redirectUri, client.redirectUris, client.isPublic)) {
    throw new UnsafeRequestError('invalid_request', 'redirect_uri does not match a registered redirect URI');
  }

  const stateRaw = params.state;
  const state = typeof stateRaw === 'string' && stateRaw !== '' && stateRaw.length <= MAX_PARAM ? stateRaw : undefined;
  const fail = (e: OAuthError): never => {
    throw new RedirectError(e, redirectUri, state);
  };

  if (repeated.length) fail(new InvalidRequest(`repeated parameter: ${repeated[0]}`));
  if (typeof stateRaw === 'string' && stateRaw.length > MAX_PARAM) fail(new InvalidRequest('state is too long'));
  for (const [k, v] of Object.entries(params)) {
    if (typeof v === 'string' && v.length > MAX_PARAM) fail(new InvalidRequest(`${k} is too long`));
  }
  if (!client.grantTypes.includes('authorization_code')) fail(new UnauthorizedClient('the client may not use the authorization code grant'));
  const responseType = single(params, 'response_type');
  if (!responseType) fail(new InvalidRequest('response_type is missing'));
  if (responseType !== 'code') fail(new UnsupportedResponseType('only response_type=code is supported'));
  const responseMode = single(params, 'response_mode');
  if (responseMode !== undefined && responseMode !== 'query') fail(new InvalidRequest('only response_mode=query is supported'));
  for (const unsupported of ['request', 'request_uri', 'registration']) {
    if (single(params, unsupported) !== undefined) fail(new OAuthError(`${unsupported.replace('registration', 'registration')}_not_supported`, `${unsupported} is not supported`));
  }

  const scopes = parseScope(single(params, 'scope') ?? '');
  if (!scopes) fail(new InvalidScope('scope is malformed'));
  if (scopes!.length === 0) fail(new InvalidScope('scope is missing'));
  const notAllowed = scopes!.filter((s) => !client.scopes.includes(s));
  if (notAllowed.length) fail(new InvalidScope(`scope not allowed for this client: ${notAllowed.join(' ')}`));

  // PKCE: S256 only; required for public clients and by default for every client
  const challenge = single(params, 'code_challenge');
  const method = single(params, 'code_challenge_method');
  if (challenge === undefined && method !== undefined) fail(new InvalidRequest('code_challenge_method without code_challenge'));
  if (challenge !== undefined) {
    if (method !== 'S256') fail(new InvalidRequest('code_challenge_method must be S256 (plain is not allowed)'));
    if (!isValidChallenge(challenge)) fail(new InvalidRequest('code_challenge is malformed'));
  } else if (client.isPublic || (opts.pkceRequired && client.requirePkce)) {
    fail(new InvalidRequest('PKCE is required: send code_challenge with code_challenge_method=S256'));
  }

  const promptRaw = single(params, 'prompt');
  const prompt = promptRaw ? [...new Set(promptRaw.split(' ').filter(Boolean))] : [];
  for (const p of prompt) {
    if (!['none', 'login', 'consent', 'select_account'].includes(p)) fail(new InvalidRequest(`unsupported prompt value: ${p}`));
  }
  if (prompt.includes('none') && prompt.length > 1) fail(new InvalidRequest('prompt=none cannot be combined with other values'));

  const maxAgeRaw = single(params, 'max_age');
  let maxAge: number | undefined;
  if (maxAgeRaw !== undefined) {
    if (!/^\d{1,9}$/.test(maxAgeRaw)) fail(new InvalidRequest('max_age must be a non-negative integer'));
    maxAge = Number(maxAgeRaw);
  }

  const resourcesRaw = params.resource === undefined ? [] : Array.isArray(params.resource) ? params.resource : [params.resource];
  const resources = [...new Set(resourcesRaw.filter((r) => r !== ''))];
  for (const r of resources) {
    let ok = false;
    try {
      ok = !r.includes('#') && Boolean(new URL(r).protocol);
    } catch {
      ok = false;
    }
    if (!ok) fail(new InvalidTarget('resource must be an absolute URI without a fragment'));
    if (!client.audiences.includes(r)) fail(new InvalidTarget(`resource not allowed for this client: ${r}`));
  }

  let finalScopes = scopes!;
  // OIDC Core §11: offline_access is ignored unless prompt=consent (or the client is first-party),
  // and is meaningless for a client that may not refresh
  if (finalScopes.includes('offline_access') && (!client.grantTypes.includes('refresh_token') || !(prompt.includes('consent') || client.firstParty))) {
    finalScopes = finalScopes.filter((s) => s !== 'offline_access');
  }

  const nonce = single(params, 'nonce');
  const loginHint = single(params, 'login_hint');
  return {
    client,
    request: {
      clientId: client.clientId,
      redirectUri,
      scopes: finalScopes,
      state,
      nonce,
      codeChallenge: challenge,
      prompt,
      maxAge,
      loginHint,
      resources,
    },
  };
}

/** The authorization response URL (RFC 6749 §4.1.2, RFC 9207 `iss`). */
export function buildRedirect(redirectUri: string, params: Record<string, string | undefined>): string {
  const u = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

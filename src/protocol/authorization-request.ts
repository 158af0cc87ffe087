// Validation of an authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 7636, RFC 8707),
// framework-free. Errors before the client and redirect URI are verified are never redirected
// (RFC 6749 §4.1.2.1); every later one is.
import type { Client } from '../core/model.js';
import { InvalidRequest, InvalidScope, InvalidTarget, OAuthError, UnauthorizedClient, UnsupportedResponseType } from '../core/errors.js';
import { matchRedirectUri } from './redirect-uri.js';
import { isValidChallenge } from './pkce.js';
import { parseScope } from '../core/vocabulary.js';
import { parseClaimsRequest, unmetEssentialAcr } from './claims-request.js';
import { UnmetAuthenticationRequirements } from '../core/errors.js';
import { JKT_PATTERN } from './dpop.js';

export const RESPONSE_MODES: ResponseMode[] = ['query', 'form_post'];
export const DISPLAY_VALUES = ['page'];
export const UI_LOCALES = ['en'];

export type { AuthorizationRequest, RawParams, ResponseMode } from '../core/model.js';
import type { AuthorizationRequest, ClaimsRequest, RawParams, ResponseMode } from '../core/model.js';

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
    readonly responseMode: ResponseMode = 'query',
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
  /** RFC 9101: verify a request object of `client`; its parameters, or an UnsafeRequestError. */
  openRequestObject?: (jwt: string, client: Client) => Promise<RawParams>;
  /** RFC 9126: take (single use) a pushed request of `client`; undefined when unknown, used or expired. */
  takePushedRequest?: (requestUri: string, client: Client) => Promise<RawParams | undefined>;
  /** The request is being pushed (POST /par): request_uri is not allowed, and it is not yet used. */
  pushing?: boolean;
}

export interface ValidatedRequest {
  request: AuthorizationRequest;
  client: Client;
  /** OIDC Core §3.1.2.1, to be verified by the caller (it needs our keys). */
  idTokenHint?: string;
  /** The parameters the request was validated from (after a request object or a pushed request was opened). */
  params: RawParams;
}

/**
 * Where the parameters come from: the query (or form), a request object (RFC 9101 §6.3: then
 * only from the object), or a pushed request (RFC 9126 §4). Errors here are never redirected:
 * no redirect URI is trusted yet.
 */
async function resolveParams(params: RawParams, client: Client, opts: ValidateOptions): Promise<RawParams> {
  if (Array.isArray(params.request) || Array.isArray(params.request_uri)) throw new UnsafeRequestError('invalid_request', 'request or request_uri is repeated');
  const requestUri = single(params, 'request_uri');
  const requestObject = single(params, 'request');
  if (requestUri !== undefined && requestObject !== undefined) throw new UnsafeRequestError('invalid_request', 'request and request_uri cannot be combined');
  let resolved = params;
  if (requestUri !== undefined) {
    if (opts.pushing) throw new UnsafeRequestError('invalid_request', 'request_uri cannot be pushed');
    // only the URNs our PAR endpoint hands out; we never fetch a request object by reference
    if (!requestUri.startsWith('urn:ietf:params:oauth:request_uri:') || !opts.takePushedRequest) {
      throw new UnsafeRequestError('request_uri_not_supported', 'only request_uri values from the pushed authorization request endpoint are supported');
    }
    const pushed = await opts.takePushedRequest(requestUri, client);
    if (!pushed) throw new UnsafeRequestError('invalid_request_uri', 'the request_uri is unknown, expired or was already used');
    return { ...pushed, client_id: client.clientId };
  }
  if (client.requirePar && !opts.pushing) throw new UnsafeRequestError('invalid_request', 'this client must use pushed authorization requests (RFC 9126)');
  if (requestObject !== undefined) {
    if (!opts.openRequestObject) throw new UnsafeRequestError('request_not_supported', 'request objects are not supported');
    const inner = await opts.openRequestObject(requestObject, client);
    if (inner.client_id !== undefined && inner.client_id !== client.clientId) throw new UnsafeRequestError('invalid_request_object', 'the request object is for another client');
    if (inner.request !== undefined || inner.request_uri !== undefined) throw new UnsafeRequestError('invalid_request_object', 'a request object cannot contain request or request_uri');
    resolved = { ...inner, client_id: client.clientId };
  }
  return resolved;
}

export async function validateAuthorizationRequest(outer: RawParams, opts: ValidateOptions): Promise<ValidatedRequest> {
  if (Array.isArray(outer.client_id)) throw new UnsafeRequestError('invalid_request', 'client_id is repeated');
  const clientId = single(outer, 'client_id');
  if (!clientId) throw new UnsafeRequestError('invalid_request', 'client_id is missing');
  if (clientId.length > 200) throw new UnsafeRequestError('invalid_client', 'unknown client');
  const client = await opts.findClient(clientId);
  if (!client) throw new UnsafeRequestError('invalid_client', 'unknown client');
  const params = await resolveParams(outer, client, opts);
  const repeated = repeatedParams(params);

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

  // OAuth 2.0 Form Post Response Mode: the mode decides how every later error is returned, and an
  // unknown one cannot be answered in any mode the client understands (an error page, never a redirect)
  if (Array.isArray(params.response_mode)) throw new UnsafeRequestError('invalid_request', 'response_mode is repeated');
  const responseModeRaw = single(params, 'response_mode') ?? 'query';
  if (!(RESPONSE_MODES as string[]).includes(responseModeRaw)) throw new UnsafeRequestError('invalid_request', `unsupported response_mode (supported: ${RESPONSE_MODES.join(', ')})`);
  const responseMode = responseModeRaw as ResponseMode;

  const stateRaw = params.state;
  const state = typeof stateRaw === 'string' && stateRaw !== '' && stateRaw.length <= MAX_PARAM ? stateRaw : undefined;
  const fail = (e: OAuthError): never => {
    throw new RedirectError(e, redirectUri, state, responseMode);
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
  // OIDC Core §6.1, §7.2.1: dynamic registration parameters are not processed
  if (single(params, 'registration') !== undefined) fail(new OAuthError('registration_not_supported', 'registration is not supported'));

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

  // OIDC Core §5.5
  const claimsRaw = single(params, 'claims');
  let claims: ClaimsRequest | undefined;
  if (claimsRaw !== undefined) {
    claims = parseClaimsRequest(claimsRaw);
    if (!claims) fail(new InvalidRequest('claims must be a JSON object with userinfo and id_token members (OIDC Core §5.5)'));
  }
  if (unmetEssentialAcr(claims)) fail(new UnmetAuthenticationRequirements('no supported acr value was requested as essential'));
  const acrValues = (single(params, 'acr_values') ?? '').split(' ').filter(Boolean);

  // OIDC Core §3.1.2.1: display, ui_locales, claims_locales are hints; unknown values are ignored
  const display = single(params, 'display');
  if (display !== undefined && !['page', 'popup', 'touch', 'wap'].includes(display)) fail(new InvalidRequest('display must be page, popup, touch or wap'));
  const uiLocales = (single(params, 'ui_locales') ?? '').split(' ').filter(Boolean);
  const uiLocale = uiLocales.map((l) => l.toLowerCase().split('-')[0]!).find((l) => UI_LOCALES.includes(l)) ?? 'en';

  const dpopJkt = single(params, 'dpop_jkt');
  if (dpopJkt !== undefined && !JKT_PATTERN.test(dpopJkt)) fail(new InvalidRequest('dpop_jkt must be a JWK SHA-256 thumbprint, base64url (RFC 9449 §10)'));

  const nonce = single(params, 'nonce');
  const loginHint = single(params, 'login_hint');
  return {
    client,
    params,
    idTokenHint: single(params, 'id_token_hint'),
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
      responseMode,
      ...(claims ? { claims } : {}),
      acrValues,
      uiLocale,
      ...(dpopJkt ? { dpopJkt } : {}),
    },
  };
}

/** The authorization response URL (RFC 6749 §4.1.2, RFC 9207 `iss`). */
export function buildRedirect(redirectUri: string, params: Record<string, string | undefined>): string {
  const u = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

// The OAuth/OIDC steps the workloads repeat, written once against the standard contract so the same
// requests go to Latchkey and to node-oidc-provider. Endpoints come from each server's discovery
// document, falling back to Latchkey's documented paths while an endpoint is not advertised yet.
import crypto from 'node:crypto';
import type http from 'node:http';
import { basicAuth, CookieJar, form, json, parseForm, request, type HttpResponse } from './http.js';

/** The endpoint a workload needs does not exist (yet) on this server: report "n/a", do not fail. */
export class NotAvailable extends Error {}

export interface ClientCreds {
  id: string;
  secret: string;
}

export interface Endpoints {
  discovery: string;
  jwks: string;
  authorization: string;
  token: string;
  userinfo: string;
  introspection: string;
  revocation: string;
}

export interface Target {
  name: string;
  issuer: string;
  pid: number;
  /** The Postgres database whose backends serve this server (their CPU is counted with its own). */
  pgDatabase?: string;
  endpoints: Endpoints;
  /** The discovery document, as served. */
  metadata: Record<string, unknown>;
  user: { email: string; password: string };
  clients: {
    /** confidential, client_credentials, audience https://api.example; also the introspecting client */
    cc: ClientCreds;
    /** confidential, authorization_code + refresh_token, first-party */
    web: ClientCreds;
    /** the same, used for the /userinfo token (the peer issues it an opaque, userinfo-only token) */
    ui: ClientCreds;
  };
  redirectUri: string;
  resource: string;
  scopes: { cc: string; web: string; ui: string };
  /** `resource` sent when obtaining the token that /introspect is benched with (undefined: none). */
  introspectResource: string | undefined;
}

export const NOT_FOUND = new Set([404, 405]);

export function assertAvailable(res: HttpResponse, what: string): void {
  if (NOT_FOUND.has(res.status)) throw new NotAvailable(`${what}: ${res.status} at ${res.url.pathname}`);
}

function unexpected(res: HttpResponse, what: string): Error {
  return new Error(`${what}: unexpected ${res.status} from ${res.url.pathname}: ${res.body.replace(/\s+/g, ' ').slice(0, 300)}`);
}

export async function discover(issuer: string): Promise<{ endpoints: Endpoints; metadata: Record<string, unknown> }> {
  const discovery = `${issuer}/.well-known/openid-configuration`;
  const res = await request(discovery);
  if (res.status !== 200) throw unexpected(res, 'discovery');
  const metadata = json(res);
  const m = metadata as Record<string, string | undefined>;
  const endpoints = {
    discovery,
    jwks: m.jwks_uri ?? `${issuer}/.well-known/jwks.json`,
    authorization: m.authorization_endpoint ?? `${issuer}/authorize`,
    token: m.token_endpoint ?? `${issuer}/token`,
    userinfo: m.userinfo_endpoint ?? `${issuer}/userinfo`,
    introspection: m.introspection_endpoint ?? `${issuer}/introspect`,
    revocation: m.revocation_endpoint ?? `${issuer}/revoke`,
  };
  return { endpoints, metadata };
}

/** A grant the server does not advertise (grant_types_supported) is "n/a", not a failure. */
export function assertGrantAdvertised(t: Target, grant: string): void {
  const g = t.metadata.grant_types_supported;
  if (Array.isArray(g) && !g.includes(grant)) throw new NotAvailable(`${grant} not in grant_types_supported (${g.join(', ')})`);
}

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in?: number;
  refresh_token?: string;
  id_token?: string;
  scope?: string;
}

export async function tokenRequest(t: Target, client: ClientCreds, params: Record<string, string | undefined>, agent?: http.Agent): Promise<HttpResponse> {
  return request(
    t.endpoints.token,
    { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(client.id, client.secret), accept: 'application/json' }, body: form(params) },
    agent,
  );
}

function tokenBody(res: HttpResponse, what: string): TokenResponse {
  assertAvailable(res, what);
  if (res.status !== 200) throw unexpected(res, what);
  const body = json<TokenResponse>(res);
  if (typeof body.access_token !== 'string') throw unexpected(res, `${what} (no access_token)`);
  return body;
}

export async function clientCredentials(t: Target, resource: string | undefined, agent?: http.Agent): Promise<TokenResponse> {
  return tokenBody(await tokenRequest(t, t.clients.cc, { grant_type: 'client_credentials', scope: t.scopes.cc, resource }, agent), 'client_credentials');
}

export async function exchangeCode(t: Target, client: ClientCreds, code: string, verifier: string, agent?: http.Agent): Promise<TokenResponse> {
  return tokenBody(
    await tokenRequest(t, client, { grant_type: 'authorization_code', code, redirect_uri: t.redirectUri, code_verifier: verifier }, agent),
    'authorization_code',
  );
}

export async function refresh(t: Target, client: ClientCreds, refreshToken: string, agent?: http.Agent): Promise<TokenResponse> {
  return tokenBody(await tokenRequest(t, client, { grant_type: 'refresh_token', refresh_token: refreshToken }, agent), 'refresh_token');
}

/** As the resource server (the cc client, whose audience the access tokens carry) unless told otherwise. */
export async function introspect(t: Target, token: string, hint?: string, agent?: http.Agent, caller: ClientCreds = t.clients.cc): Promise<Record<string, unknown>> {
  const res = await request(
    t.endpoints.introspection,
    {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(caller.id, caller.secret), accept: 'application/json' },
      body: form({ token, token_type_hint: hint }),
    },
    agent,
  );
  assertAvailable(res, 'introspect');
  if (res.status !== 200) throw unexpected(res, 'introspect');
  return json(res);
}

export async function revoke(t: Target, client: ClientCreds, token: string, hint?: string, agent?: http.Agent): Promise<void> {
  const res = await request(
    t.endpoints.revocation,
    { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(client.id, client.secret) }, body: form({ token, token_type_hint: hint }) },
    agent,
  );
  assertAvailable(res, 'revoke');
  if (res.status !== 200) throw unexpected(res, 'revoke');
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = crypto.randomBytes(32).toString('base64url');
  return { verifier, challenge: crypto.createHash('sha256').update(verifier).digest('base64url') };
}

export interface AuthorizeResult {
  code: string;
  verifier: string;
  /** HTTP requests the flow took (redirects and form posts included). */
  steps: number;
  /** A credentials form was submitted (i.e. this was a password login, not a session hit). */
  loggedIn: boolean;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * authorize → (login page → form post)* → redirect_uri?code. With `allowLogin: false` the session in
 * `jar` must be enough: any form on the way is an error (the session was not recognized).
 */
export async function authorize(
  t: Target,
  client: ClientCreds,
  scope: string,
  jar: CookieJar,
  opts: { allowLogin: boolean; agent?: http.Agent },
): Promise<AuthorizeResult> {
  const { verifier, challenge } = pkce();
  const state = crypto.randomBytes(12).toString('base64url');
  const u = new URL(t.endpoints.authorization);
  u.search = form({
    response_type: 'code',
    client_id: client.id,
    redirect_uri: t.redirectUri,
    scope,
    state,
    nonce: crypto.randomBytes(12).toString('base64url'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  const origin = new URL(t.issuer).origin;
  let res = await request(u, { jar }, opts.agent);
  assertAvailable(res, 'authorize');
  let steps = 1;
  let loggedIn = false;
  for (let hop = 0; hop < 12; hop++) {
    if (REDIRECTS.has(res.status)) {
      const location = res.headers.location;
      if (!location) throw unexpected(res, 'authorize (redirect without Location)');
      const next = new URL(location, res.url);
      if (next.href.startsWith(t.redirectUri)) {
        const error = next.searchParams.get('error');
        if (error) throw new Error(`authorize: ${error}: ${next.searchParams.get('error_description') ?? ''}`);
        if (next.searchParams.get('state') !== state) throw new Error('authorize: state mismatch');
        const iss = next.searchParams.get('iss');
        if (iss !== null && iss !== t.issuer) throw new Error(`authorize: iss mismatch (${iss})`);
        const code = next.searchParams.get('code');
        if (!code) throw new Error(`authorize: no code in ${next.pathname}${next.search.replace(/code=[^&]*/, 'code=…')}`);
        return { code, verifier, steps, loggedIn };
      }
      if (next.origin !== origin) throw new Error(`authorize: redirected off the issuer to ${next.origin}`);
      const method = res.status === 307 || res.status === 308 ? 'POST' : 'GET';
      if (method === 'POST') throw new Error('authorize: 307/308 redirects are not handled by the bench driver');
      res = await request(next, { jar }, opts.agent);
      steps++;
      assertAvailable(res, 'authorize (redirect target)');
      continue;
    }
    if (res.status === 200 && /html/.test(String(res.headers['content-type'] ?? ''))) {
      const f = parseForm(res.body, res.url);
      if (!f) throw unexpected(res, 'authorize (an HTML page without a POST form)');
      const body: Record<string, string> = { ...f.hidden };
      if (f.passwordField) {
        if (!opts.allowLogin) throw new Error('authorize: a login form was shown although the client has a session');
        if (!f.usernameField) throw new Error('authorize: login form without a username field');
        body[f.usernameField] = t.user.email;
        body[f.passwordField] = t.user.password;
        loggedIn = true;
      } else if (!opts.allowLogin) {
        throw new Error(`authorize: an interaction page (${res.url.pathname}) was shown although the client has a session`);
      }
      res = await request(
        f.action,
        { method: 'POST', jar, headers: { 'content-type': 'application/x-www-form-urlencoded', origin }, body: form(body) },
        opts.agent,
      );
      steps++;
      assertAvailable(res, 'login form post');
      continue;
    }
    throw unexpected(res, 'authorize');
  }
  throw new Error('authorize: too many hops');
}

/** A fresh browser that logs in once; returns its jar (holding the login session) and the first code. */
export async function loginSession(t: Target, client: ClientCreds, scope: string, agent?: http.Agent): Promise<{ jar: CookieJar; first: AuthorizeResult }> {
  const jar = new CookieJar();
  const first = await authorize(t, client, scope, jar, { allowLogin: true, agent });
  if (!first.loggedIn) throw new Error('authorize: a fresh browser got a code without logging in');
  return { jar, first };
}

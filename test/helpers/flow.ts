// Get tokens the way a relying party does: authorize (with login) → code → /token.
import crypto from 'node:crypto';
import { Browser, authorizeWithLogin } from './http-login.js';

export function pkce(): { verifier: string; challenge: string } {
  const verifier = crypto.randomBytes(32).toString('base64url');
  return { verifier, challenge: crypto.createHash('sha256').update(verifier).digest('base64url') };
}

export function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  scope: string;
  expires_in: number;
}

export async function tokenRequest(issuer: string, form: Record<string, string>, auth?: { clientId: string; secret?: string }): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = { ...form };
  if (auth?.secret) headers.authorization = basic(auth.clientId, auth.secret);
  else if (auth) body.client_id = auth.clientId;
  const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body: new URLSearchParams(body).toString() });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}

export async function postForm(url: string, form: Record<string, string>, auth?: { clientId: string; secret?: string }): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = { ...form };
  if (auth?.secret) headers.authorization = basic(auth.clientId, auth.secret);
  else if (auth) body.client_id = auth.clientId;
  const res = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(body).toString() });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export interface LoginOptions {
  issuer: string;
  clientId: string;
  secret?: string;
  redirectUri: string;
  email: string;
  password: string;
  scope: string;
  browser?: Browser;
  extra?: Record<string, string>;
}

/** Log in through the pages and redeem the code; returns the token set and the browser. */
export async function loginAndRedeem(o: LoginOptions): Promise<{ tokens: TokenSet; browser: Browser; code: string }> {
  const browser = o.browser ?? new Browser(o.issuer);
  const { verifier, challenge } = pkce();
  const url = new URL(`${o.issuer}/authorize`);
  const params = { response_type: 'code', client_id: o.clientId, redirect_uri: o.redirectUri, scope: o.scope, state: 'st', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256', ...o.extra };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const step = await authorizeWithLogin(browser, url.href, o.email, o.password);
  if (!step.location?.startsWith(o.redirectUri)) throw new Error(`login did not reach the client: ${step.status} ${step.location ?? step.body.slice(0, 300)}`);
  const code = new URL(step.location).searchParams.get('code');
  if (!code) throw new Error(`no code: ${step.location}`);
  const r = await tokenRequest(o.issuer, { grant_type: 'authorization_code', code, redirect_uri: o.redirectUri, code_verifier: verifier }, { clientId: o.clientId, secret: o.secret });
  if (r.status !== 200) throw new Error(`token request failed: ${r.status} ${JSON.stringify(r.body)}`);
  return { tokens: r.body as unknown as TokenSet, browser, code };
}

/** An /authorize URL for `clientId` with a fresh PKCE challenge (scope openid by default). */
export function authorizationUrl(issuer: string, clientId: string, redirectUri: string, extra: Record<string, string> = {}): string {
  const url = new URL(`${issuer}/authorize`);
  const { challenge } = pkce();
  const params = { response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'openid', state: 's', code_challenge: challenge, code_challenge_method: 'S256', ...extra };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.href;
}

/** What /authorize does in this browser now: 'login' (the login page) or 'sso' (straight back with a code). */
export async function authorizeState(browser: Browser, issuer: string, clientId: string, redirectUri: string): Promise<string> {
  const step = await browser.follow(await browser.get(authorizationUrl(issuer, clientId, redirectUri)));
  if (step.status === 200 && step.body.includes('name="password"')) return 'login';
  if (step.location?.startsWith(redirectUri) && new URL(step.location).searchParams.get('code')) return 'sso';
  return `${step.status} ${step.location ?? step.body.slice(0, 200)}`;
}

/** Does a fresh login with this password, in a new browser, reach the client with a code? */
export async function canLogIn(issuer: string, clientId: string, redirectUri: string, email: string, password: string): Promise<boolean> {
  const step = await authorizeWithLogin(new Browser(issuer), authorizationUrl(issuer, clientId, redirectUri), email, password);
  return Boolean(step.location?.startsWith(redirectUri) && new URL(step.location).searchParams.get('code'));
}

// What the browser-facing routes share: cookies (signed, HttpOnly, SameSite=Lax, `__Host-` and
// Secure on https), CSRF tokens bound to the interaction, the origin check, and page headers.
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../core/config.js';

export interface CookieNames {
  session: string;
  interaction: string;
}

export function cookieNames(config: Config): CookieNames {
  const prefix = config.issuerIsHttps ? '__Host-' : '';
  return { session: `${prefix}lk_session`, interaction: `${prefix}lk_interaction` };
}

export function cookieOptions(config: Config, maxAgeSeconds?: number) {
  return {
    path: '/',
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: config.issuerIsHttps,
    signed: true,
    ...(maxAgeSeconds !== undefined ? { maxAge: maxAgeSeconds } : {}),
  };
}

/**
 * Options for clearing one of our cookies: the same attributes it was set with, since a browser
 * ignores a `__Host-` cookie (the https case) that comes without `Secure` and `Path=/`.
 */
export function clearCookieOptions(config: Config) {
  const { signed: _signed, ...rest } = cookieOptions(config);
  return rest;
}

export function readSignedCookie(req: FastifyRequest, name: string): string | undefined {
  const raw = req.cookies[name];
  if (!raw) return undefined;
  const r = req.unsignCookie(raw);
  return r.valid && r.value ? r.value : undefined;
}

export function csrfToken(secret: Buffer, purpose: string, binding: string): string {
  return crypto.createHmac('sha256', secret).update(`${purpose}\0${binding}`).digest('base64url');
}

export function csrfMatches(secret: Buffer, purpose: string, binding: string, presented: unknown): boolean {
  if (typeof presented !== 'string' || presented.length > 100) return false;
  const expected = Buffer.from(csrfToken(secret, purpose, binding));
  const got = Buffer.from(presented);
  return expected.length === got.length && crypto.timingSafeEqual(expected, got);
}

/** Same-origin check for form POSTs: Origin must be ours (Referer as a fallback). */
export function isSameOrigin(req: FastifyRequest, issuer: string): boolean {
  const ours = new URL(issuer).origin;
  const origin = req.headers.origin;
  if (typeof origin === 'string') return origin === ours;
  const referer = req.headers.referer;
  if (typeof referer === 'string') {
    try {
      return new URL(referer).origin === ours;
    } catch {
      return false;
    }
  }
  return false;
}

/** The origin (or scheme, for private-use schemes) a form POST may redirect to (CSP form-action). */
export function formActionSource(uri: string): string {
  try {
    const u = new URL(uri);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : u.protocol;
  } catch {
    return '';
  }
}

/** Headers for our HTML pages: no caching, a strict CSP, no framing. */
export function sendPage(reply: FastifyReply, config: Config, status: number, body: string, formTargets: string[] = []): FastifyReply {
  const formAction = ["'self'", ...new Set(formTargets.map(formActionSource).filter(Boolean))].join(' ');
  const csp = [
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self' data:",
    `form-action ${formAction}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    ...(config.issuerIsHttps ? ['upgrade-insecure-requests'] : []),
  ].join('; ');
  return sendHtml(reply, status, csp, body);
}

/** Every HTML answer: its CSP, no framing, never cached. */
export function sendHtml(reply: FastifyReply, status: number, csp: string, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-security-policy', csp)
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-store')
    .header('pragma', 'no-cache')
    .type('text/html; charset=utf-8')
    .send(body);
}

// Redirect-URI rules. RFC 6749 §3.1.2: absolute, no fragment. RFC 9700 §2.1: exact matching.
// RFC 8252 §7.3: for native (public) clients a loopback IP redirect URI matches on any port.
import { isLoopbackHost } from '../core/config.js';

export const LOOPBACK_IPS = new Set(['127.0.0.1', '[::1]']);

/**
 * The rules every URI a client registers shares (redirect, post-logout, back-channel logout):
 * absolute, no fragment, no credentials, https or http on a loopback host. `otherScheme` judges
 * any other scheme (without its colon): undefined accepts it, a string says why not.
 */
export function registeredUriProblem(uri: string, otherScheme: (scheme: string) => string | undefined): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return 'must be an absolute URI';
  }
  if (uri.includes('#')) return 'must not contain a fragment';
  if (u.username || u.password) return 'must not contain credentials';
  const scheme = u.protocol.slice(0, -1);
  if (scheme === 'https') return undefined;
  if (scheme === 'http') return isLoopbackHost(u.hostname) ? undefined : 'http is allowed only for loopback hosts (use https)';
  return otherScheme(scheme);
}

/** Why `uri` cannot be registered, or undefined when it can. */
export function redirectUriProblem(uri: string): string | undefined {
  return registeredUriProblem(uri, (scheme) =>
    // RFC 8252 §7.1: private-use URI schemes for native apps are reverse domain names
    /^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+$/.test(scheme) ? undefined : `the scheme ${scheme}: is not allowed (use https, http on loopback, or a reverse-domain private-use scheme)`,
  );
}

/** Does the presented redirect_uri match one that the client registered? */
export function matchRedirectUri(presented: string, registered: readonly string[], isPublic: boolean): boolean {
  if (registered.includes(presented)) return true;
  if (!isPublic) return false;
  let p: URL;
  try {
    p = new URL(presented);
  } catch {
    return false;
  }
  if (p.protocol !== 'http:' || !LOOPBACK_IPS.has(p.hostname)) return false;
  return registered.some((r) => {
    try {
      const u = new URL(r);
      if (u.protocol !== 'http:' || !LOOPBACK_IPS.has(u.hostname)) return false;
      // compare everything but the port
      u.port = '';
      const q = new URL(presented);
      q.port = '';
      return u.href === q.href;
    } catch {
      return false;
    }
  });
}

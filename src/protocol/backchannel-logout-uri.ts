// OIDC Back-Channel Logout 1.0 §2.2: backchannel_logout_uri is an absolute URI, https (http only
// on a loopback host, for development), with no fragment; it may carry a query.
import { isLoopbackHost } from '../config.js';

/** Why `uri` cannot be registered as a backchannel_logout_uri, or undefined when it can. */
export function backchannelLogoutUriProblem(uri: string): string | undefined {
  if (uri.length > 2000) return 'must be at most 2000 characters';
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return 'must be an absolute URI';
  }
  if (uri.includes('#')) return 'must not contain a fragment';
  if (u.username || u.password) return 'must not contain credentials';
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:') return isLoopbackHost(u.hostname) ? undefined : 'http is allowed only for loopback hosts (use https)';
  return `the scheme ${u.protocol} is not allowed (use https, or http on loopback)`;
}

// OIDC Back-Channel Logout 1.0 §2.2: backchannel_logout_uri is an absolute URI, https (http only
// on a loopback host, for development), with no fragment; it may carry a query.
import { registeredUriProblem } from './redirect-uri.js';

/** Why `uri` cannot be registered as a backchannel_logout_uri, or undefined when it can. */
export function backchannelLogoutUriProblem(uri: string): string | undefined {
  if (uri.length > 2000) return 'must be at most 2000 characters';
  return registeredUriProblem(uri, (scheme) => `the scheme ${scheme}: is not allowed (use https, or http on loopback)`);
}

// OIDC Back-Channel Logout 1.0 §2.2: backchannel_logout_uri is an absolute URI, https (http only
// on a loopback host, for development), with no fragment; it may carry a query.
// The server POSTs to it itself, so with an https issuer (production) its host must be public
// (src/protocol/ip-ranges.ts), at registration and again at every delivery, unless the operator
// lists the host in BACKCHANNEL_ALLOWED_HOSTS. An http issuer is development: anything goes.
import type { LookupAddress } from 'node:dns';
import { registeredUriProblem } from './redirect-uri.js';
import { publicAddresses, RefusedAddress, systemLookup, type Lookup } from './ip-ranges.js';

export interface BackchannelTargetPolicy {
  issuerIsHttps: boolean;
  /** BACKCHANNEL_ALLOWED_HOSTS: `host` (any port) or `host:port`, lowercase, IPv6 in brackets. */
  backchannelAllowedHosts: readonly string[];
}

/** Why `uri` cannot be registered as a backchannel_logout_uri, or undefined when it can. */
export function backchannelLogoutUriProblem(uri: string): string | undefined {
  if (uri.length > 2000) return 'must be at most 2000 characters';
  return registeredUriProblem(uri, (scheme) => `the scheme ${scheme}: is not allowed (use https, or http on loopback)`);
}

/** Is the URL's host (and port) listed by the operator? */
export function isAllowedHost(u: URL, allowed: readonly string[]): boolean {
  const host = u.hostname.toLowerCase();
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  return allowed.some((entry) => entry === host || entry === `${host}:${port}`);
}

/**
 * Where a delivery to `uri` may connect: `undefined` when no check applies (http issuer, or an
 * allowed host), else the checked public addresses. Throws RefusedAddress for a host that is, or
 * resolves to, a non-public address.
 */
export async function backchannelTarget(uri: string, policy: BackchannelTargetPolicy, lookup: Lookup = systemLookup): Promise<LookupAddress[] | undefined> {
  const u = new URL(uri);
  if (!policy.issuerIsHttps || isAllowedHost(u, policy.backchannelAllowedHosts)) return undefined;
  return publicAddresses(u.hostname, lookup);
}

/**
 * Registration (clients create / update): the syntax, then the target. A name that does not
 * resolve yet is accepted: every delivery checks again before it connects.
 */
export async function backchannelLogoutRegistrationProblem(uri: string, policy: BackchannelTargetPolicy, lookup: Lookup = systemLookup): Promise<string | undefined> {
  const problem = backchannelLogoutUriProblem(uri);
  if (problem) return problem;
  try {
    await backchannelTarget(uri, policy, lookup);
  } catch (err) {
    if (err instanceof RefusedAddress) return `${err.message}: back-channel logout is sent only to public addresses (an operator may allow the host in BACKCHANNEL_ALLOWED_HOSTS)`;
  }
  return undefined;
}

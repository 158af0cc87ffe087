// DPoP (RFC 9449) at our endpoints: the proof of a token or PAR request (§5, §10.1), and access
// tokens presented to our own resource endpoints — /userinfo and the admin API — with the
// `DPoP` scheme and a proof bound to the token by `ath` (§7).
import type { FastifyRequest } from 'fastify';
import { InvalidDpopProof, InvalidDpopToken, InvalidToken } from '../core/errors.js';
import { dpopHeader, verifyDpopProof, type VerifiedProof } from '../protocol/dpop.js';
import { recordDpopProof } from '../store/dpop-proofs.js';
import { verifyAccessToken, type AccessTokenClaims } from '../tokens/access-token.js';
import type { Services } from './services.js';

/** The URL a client addressed this request to, as a proof's htu names it: the issuer's origin and path, plus the route. */
export function requestHtu(svc: Services, req: FastifyRequest): string {
  const q = req.url.indexOf('?');
  return `${svc.config.issuer}${q < 0 ? req.url : req.url.slice(0, q)}`;
}

/**
 * The DPoP proof of a /token or /par request, checked but not yet recorded as used; undefined when
 * the request carries none. With DPOP_NONCE on, a proof without a current server nonce is
 * `use_dpop_nonce` — answered before the client authenticates, so that answer changes nothing.
 */
export async function endpointProof(svc: Services, req: FastifyRequest): Promise<VerifiedProof | undefined> {
  if (req.headers.dpop === undefined) return undefined;
  return limitedProof(svc, req, () =>
    verifyDpopProof(dpopHeader(req.headers.dpop)!, {
      method: req.method,
      url: requestHtu(svc, req),
      now: svc.rt.clock.now(),
      leeway: svc.config.clockLeewaySeconds,
      ...(svc.config.dpopNonce ? { nonces: svc.dpopNonces } : {}),
    }),
  );
}

/**
 * A proof checked behind the per-address count of invalid proofs (src/http/plugins/failure-limits.ts):
 * past CLIENT_AUTH_FAILURES_PER_IP in a window the address is refused (429) before its proof is
 * parsed. A missing server nonce is the protocol's first step (RFC 9449 §8), not a failure.
 */
async function limitedProof(svc: Services, req: FastifyRequest, check: () => Promise<VerifiedProof>): Promise<VerifiedProof> {
  const gate = await svc.limits.dpopProof.gate(req);
  try {
    return await check();
  } catch (err) {
    if (err instanceof InvalidDpopProof) await gate.failed();
    throw err;
  }
}

/** Record the proof's jti (shared by every replica); a proof seen before is refused. */
export async function consumeProof(svc: Services, proof: VerifiedProof, atResource = false): Promise<void> {
  if (!(await recordDpopProof(svc.rt.db, proof.replayKey, proof.freshUntil))) throw new InvalidDpopProof('the DPoP proof was already used', atResource);
}

export interface PresentedToken {
  scheme: 'bearer' | 'dpop';
  token: string;
}

// RFC 6750 §2.1 b64token; RFC 9449 §7.1 uses the same syntax. Scheme names are case-insensitive.
const CREDENTIALS = /^(Bearer|DPoP) ([A-Za-z0-9\-._~+/]+=*)$/i;

/** The access token of the Authorization header; undefined when there is none. */
export function presentedToken(req: FastifyRequest): PresentedToken | undefined {
  const h = req.headers.authorization;
  if (h === undefined) return undefined;
  const m = CREDENTIALS.exec(h);
  if (!m) throw new InvalidToken('malformed Authorization header');
  return { scheme: m[1]!.toLowerCase() === 'dpop' ? 'dpop' : 'bearer', token: m[2]! };
}

export interface RevocationGuard {
  assertNotRevoked(claims: { jti: string; fid?: string; sid?: string; status?: unknown }): Promise<void>;
}

/**
 * Verify an access token presented to one of our resource endpoints. A DPoP-bound token (cnf.jkt)
 * is accepted only with the DPoP scheme and a proof by its key for this request (htm, htu, ath),
 * used once; a bound token sent as a bearer token is refused, as is an unbound token sent with the
 * DPoP scheme (it would claim a binding the token does not have).
 */
export async function verifyPresentedToken(svc: Services, req: FastifyRequest, presented: PresentedToken, opts: { audience: string; guard: RevocationGuard }): Promise<AccessTokenClaims> {
  if (presented.scheme === 'bearer') {
    const { claims } = await verifyAccessToken(svc.rt, presented.token, { audience: opts.audience });
    if (claims.cnf) throw new InvalidDpopToken('the access token is DPoP-bound: send it with the DPoP scheme and a proof');
    await opts.guard.assertNotRevoked(claims);
    return claims;
  }
  if (req.headers.dpop === undefined) throw new InvalidDpopProof('a DPoP proof is required with the DPoP scheme', true);
  const proof = await limitedProof(svc, req, () =>
    verifyDpopProof(dpopHeader(req.headers.dpop, true)!, {
      method: req.method,
      url: requestHtu(svc, req),
      now: svc.rt.clock.now(),
      leeway: svc.config.clockLeewaySeconds,
      accessToken: presented.token,
      atResource: true,
    }),
  );
  let claims: AccessTokenClaims;
  try {
    ({ claims } = await verifyAccessToken(svc.rt, presented.token, { audience: opts.audience }));
    await opts.guard.assertNotRevoked(claims);
  } catch (err) {
    if (err instanceof InvalidToken) throw new InvalidDpopToken(err.description);
    throw err;
  }
  if (typeof claims.cnf?.jkt !== 'string') throw new InvalidDpopToken('the access token is not DPoP-bound: send it with the Bearer scheme');
  if (claims.cnf.jkt !== proof.jkt) throw new InvalidDpopProof('the DPoP proof key is not the key the access token is bound to', true);
  await consumeProof(svc, proof, true);
  return claims;
}

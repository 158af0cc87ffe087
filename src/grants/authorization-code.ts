// grant_type=authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3). The code is
// sealed (src/tokens/codes.ts): its contents are checked here, and one statement then redeems it —
// the family it creates records the code's id under a UNIQUE index, so of two redemptions, however
// concurrent and on whichever replicas, exactly one creates a family; the other is a replay and
// revokes what the first issued (RFC 6749 §4.1.2).
import crypto from 'node:crypto';
import { InvalidDpopProof, InvalidGrant, InvalidRequest, InvalidTarget } from '../core/errors.js';
import { verifierMatches } from '../protocol/pkce.js';
import { resolveAudience, userinfoAudience } from '../protocol/audience.js';
import { signAccessToken } from '../tokens/access-token.js';
import { signIdToken } from '../tokens/id-token.js';
import { MAX_CODE_LENGTH, openCode, type OpenedCode } from '../tokens/codes.js';
import { digest } from '../core/crypto.js';
import { sealRefreshToken } from '../tokens/refresh-tokens.js';
import { revokeFamiliesWhere } from '../store/refresh-families.js';
import { codeRedemptionQuery, codeWasRedeemed, type CodeRedemptionRow } from '../store/grant-statements.js';
import { metrics } from '../core/metrics.js';
import type { SigningAlg } from '../core/config.js';
import type { User } from '../db/types.js';
import type { Grant, GrantContext, TokenResponse } from './types.js';

/** Why a code that opened cannot be redeemed, checked before anything is written. */
function refusal(code: OpenedCode, redirectUri: string, verifier: string | undefined, now: Date): InvalidGrant | undefined {
  if (code.expiresAt.getTime() <= now.getTime()) return new InvalidGrant('the code has expired');
  if (digest(redirectUri) !== code.redirectUriDigest) return new InvalidGrant('redirect_uri does not match the authorization request');
  if (code.codeChallenge) {
    if (!verifier) return new InvalidGrant('code_verifier is required');
    if (!verifierMatches(verifier, code.codeChallenge)) return new InvalidGrant('code_verifier does not match the code challenge');
  } else if (verifier !== undefined) {
    // RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a downgrade attempt
    return new InvalidGrant('the code was issued without a code challenge');
  }
  return undefined;
}

/**
 * Redeem in one statement (one round trip, atomic on its own): if the user is active and the
 * login session that authorized the code has not ended, create the family — unless one exists for
 * this code (at generation 0: its first refresh token, when due, is sealed for it, and nothing
 * more is written). The session row is locked FOR SHARE, so a
 * logout committing at the same moment either sees the new family (and revokes it) or makes this
 * redemption fail.
 */
async function redeem(ctx: GrantContext, code: OpenedCode, aud: string[], now: Date) {
  const { rt, client } = ctx;
  const familyId = crypto.randomUUID();
  const iat = Math.floor(now.getTime() / 1000);
  const exp = iat + rt.config.accessTokenTtl;
  const absolute = new Date(now.getTime() + rt.config.refreshAbsoluteTtl * 1000);
  const idle = new Date(Math.min(now.getTime() + rt.config.refreshIdleTtl * 1000, absolute.getTime()));
  const offline = code.scopes.includes('offline_access');
  const wantsRefresh = client.grantTypes.includes('refresh_token') && (offline || client.refreshWithoutOffline);
  const resources = aud.filter((a) => a !== userinfoAudience(rt.config.issuer));
  // RFC 9449 §5: a public client's refresh tokens are bound to the proof key (a confidential client's are sender-constrained by its authentication)
  const dpopJkt = client.isPublic && ctx.dpop ? ctx.dpop.jkt : null;
  const rows = await rt.dbh.prepared<CodeRedemptionRow>(
    'latchkey_code_redeem',
    codeRedemptionQuery(rt.db, {
      familyId,
      sessionSid: code.sessionSid,
      userId: code.userId,
      clientId: client.clientId,
      scopes: code.scopes,
      resources,
      authTime: code.authTime,
      offline,
      codeDigest: code.codeDigest,
      now,
      idle,
      absolute,
      ip: ctx.ip.slice(0, 64),
      userAgent: ctx.userAgent?.slice(0, 256) ?? null,
      accessExpiresAt: new Date(exp * 1000),
      dpopJkt,
    }),
  );
  return { row: rows[0], familyId, refreshToken: wantsRefresh ? sealRefreshToken(rt.refreshSecret, familyId, 0, now) : undefined, iat };
}

export const authorizationCodeGrant: Grant = {
  grantType: 'authorization_code',
  async handle(ctx) {
    const { rt, client, params } = ctx;
    const presented = params.code;
    if (!presented) throw new InvalidRequest('code is missing');
    let redirectUri = params.redirect_uri;
    if (!redirectUri) {
      if (client.redirectUris.length === 1) redirectUri = client.redirectUris[0]!;
      else throw new InvalidRequest('redirect_uri is missing');
    }
    const verifier = params.code_verifier;
    const now = new Date(rt.clock.now());
    for (const r of ctx.resources) if (!client.audiences.includes(r)) throw new InvalidTarget(`resource not allowed for this client: ${r}`);

    const code = presented.length <= MAX_CODE_LENGTH ? openCode(rt.codeSecret, presented) : undefined;
    // a code of another client is refused and changes nothing
    if (!code || code.clientId !== client.clientId) throw new InvalidGrant('the code is invalid');

    const replay = async (): Promise<never> => {
      const revoked = await rt.db.transaction().execute((trx) => revokeFamiliesWhere(trx, { codeDigest: code.codeDigest }, 'code_replay', now));
      metrics.revocations.inc({ cause: 'code_replay' }, revoked);
      await ctx.afterRevocation();
      await ctx.audit({ type: 'code.replayed', userId: code.userId, clientId: client.clientId, details: { families_revoked: revoked } });
      throw new InvalidGrant('the code was already used');
    };
    const redeemed = () => codeWasRedeemed(rt.db, code.codeDigest);

    const refused = refusal(code, redirectUri, verifier, now);
    if (refused) {
      // a used code presented again is a replay, even when it has expired since
      if (await redeemed()) return replay();
      throw refused;
    }
    // RFC 9449 §10: a code bound to a DPoP key is redeemed only with a proof by that key (nothing is written otherwise)
    if (code.dpopJkt && code.dpopJkt !== ctx.dpop?.jkt) {
      throw new InvalidDpopProof(ctx.dpop ? 'the DPoP proof key is not the key the code is bound to (dpop_jkt)' : 'the code is bound to a DPoP key: send a DPoP proof');
    }
    const openid = code.scopes.includes('openid');
    const aud = resolveAudience(client, ctx.resources, code.resources, openid, rt.config.issuer);

    const { row, familyId, refreshToken, iat } = await redeem(ctx, code, aud, now);
    if (!row) throw new InvalidGrant('the user is not active');
    if (Number(row.created) === 0) {
      if (await redeemed()) return replay();
      throw new InvalidGrant('the login session has ended');
    }

    const authTime = Math.floor(code.authTime.getTime() / 1000);
    const at = await signAccessToken(rt, { sub: code.userId, clientId: client.clientId, scope: code.scopes, aud, authTime, sid: code.sessionSid ?? undefined, familyId, iat, statusIdx: row.status_idx!, userinfoClaims: code.userinfoClaims, jkt: ctx.dpop?.jkt });
    const response: TokenResponse = { access_token: at.token, token_type: ctx.dpop ? 'DPoP' : 'Bearer', expires_in: rt.config.accessTokenTtl, scope: code.scopes.join(' ') };
    if (refreshToken) response.refresh_token = refreshToken;
    if (openid) {
      const user = { id: code.userId, email: row.email, name: row.name, email_verified: row.email_verified } as User;
      response.id_token = await signIdToken(rt, { clientId: client.clientId, alg: client.idTokenAlg as SigningAlg, user, scopes: code.scopes, authTime, nonce: code.nonce, sid: code.sessionSid, accessToken: at.token, requestedClaims: code.idTokenClaims });
    }
    return response;
  },
};

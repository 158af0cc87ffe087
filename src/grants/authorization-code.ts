// grant_type=authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3): the code is
// checked and consumed in one transaction, with its row locked so that two redemptions at once
// are serialized.
import { InvalidGrant, InvalidRequest } from '../errors.js';
import { lockCode, markCodeConsumed } from '../store/codes.js';
import { findUserById } from '../store/users.js';
import { verifierMatches } from '../protocol/pkce.js';
import { resolveAudience } from '../protocol/audience.js';
import { signAccessToken } from '../tokens/access-token.js';
import { signIdToken } from '../tokens/id-token.js';
import type { SigningAlg } from '../config.js';
import type { Grant, TokenResponse } from './types.js';
import crypto from 'node:crypto';
import { sql } from 'kysely';
import { InvalidTarget } from '../errors.js';
import { digest, randomToken } from '../tokens/opaque.js';
import { newJti } from '../tokens/access-token.js';
import { s256 } from '../protocol/pkce.js';
import type { User } from '../db/types.js';
import type { GrantContext } from './types.js';

/**
 * The common case in one statement (one round trip, atomic on its own): consume the code if — and
 * only if — it is unconsumed, unexpired, this client's, for this redirect URI, its PKCE verifier
 * matches (or neither has one), its user is active and its login session has not ended; create
 * the family with the access token's expiry and, when due, the first refresh token. The session row
 * is locked FOR SHARE, so a logout committing at the same moment either sees the new family (and
 * revokes it) or makes this redemption fail. Returns undefined when nothing was redeemed (the
 * slow path then says why, and handles replays).
 */
async function redeemFast(ctx: GrantContext, code: string, redirectUri: string, verifier: string | undefined, now: Date): Promise<TokenResponse | undefined> {
  const { rt, client } = ctx;
  const codeDigest = digest(code);
  const familyId = crypto.randomUUID();
  const refreshToken = randomToken(32);
  const jti = newJti();
  const iat = Math.floor(now.getTime() / 1000);
  const exp = iat + rt.config.accessTokenTtl;
  const absolute = new Date(now.getTime() + rt.config.refreshAbsoluteTtl * 1000);
  const idle = new Date(Math.min(now.getTime() + rt.config.refreshIdleTtl * 1000, absolute.getTime()));
  const requested = JSON.stringify(ctx.resources);
  const defaultAud = JSON.stringify(client.audiences.slice(0, 1));
  const canRefresh = client.grantTypes.includes('refresh_token');
  const rows = await rt.dbh.prepared<{
    user_id: string;
    scopes: string[];
    resources: string[];
    nonce: string | null;
    auth_time: Date;
    session_sid: string | null;
    email: string;
    name: string | null;
    email_verified: boolean;
    refresh: string | number;
  }>('latchkey_code_redeem', sql`
    WITH sess AS (
      SELECT ended_at FROM login_sessions
      WHERE sid = (SELECT session_sid FROM authorization_codes WHERE code_digest = ${codeDigest})
      FOR SHARE
    ), c AS (
      UPDATE authorization_codes ac SET consumed_at = ${now}
      WHERE ac.code_digest = ${codeDigest} AND ac.consumed_at IS NULL AND ac.client_id = ${client.clientId}
        AND ac.expires_at > ${now} AND ac.redirect_uri = ${redirectUri}
        AND (CASE WHEN ac.code_challenge IS NULL THEN ${verifier === undefined}::boolean ELSE ac.code_challenge = ${verifier === undefined ? '' : s256(verifier)} END)
        AND (jsonb_array_length(ac.resources) = 0 OR ac.resources @> ${requested}::jsonb)
        AND (jsonb_array_length(ac.resources) > 0 OR jsonb_array_length(${requested}::jsonb) > 0 OR ${client.audiences.length > 0}::boolean OR ac.scopes @> '["openid"]'::jsonb)
        AND EXISTS (SELECT 1 FROM users u WHERE u.id = ac.user_id AND NOT u.disabled)
        AND NOT EXISTS (SELECT 1 FROM sess WHERE sess.ended_at IS NOT NULL)
      RETURNING ac.*
    ), fam AS (
      INSERT INTO refresh_families (id, user_id, client_id, scopes, resources, auth_time, session_sid, offline, code_digest,
        created_at, last_used_at, idle_expires_at, absolute_expires_at, created_ip, created_user_agent, access_expires_at)
      SELECT ${familyId}::uuid, c.user_id, c.client_id, c.scopes,
        CASE WHEN jsonb_array_length(${requested}::jsonb) > 0 THEN ${requested}::jsonb
             WHEN jsonb_array_length(c.resources) > 0 THEN c.resources ELSE ${defaultAud}::jsonb END,
        c.auth_time, c.session_sid, c.scopes @> '["offline_access"]'::jsonb, c.code_digest,
        ${now}::timestamptz, ${now}::timestamptz, ${idle}::timestamptz, ${absolute}::timestamptz, ${ctx.ip.slice(0, 64)}::text, ${ctx.userAgent?.slice(0, 256) ?? null}::text,
        ${new Date(exp * 1000)}::timestamptz
      FROM c
      RETURNING id, offline
    ), rt AS (
      INSERT INTO refresh_tokens (token_digest, family_id, created_at)
      SELECT ${digest(refreshToken)}::text, fam.id, ${now}::timestamptz FROM fam WHERE ${canRefresh}::boolean AND (fam.offline OR ${client.refreshWithoutOffline}::boolean)
      RETURNING token_digest
    )
    SELECT c.user_id, c.scopes, c.resources, c.nonce, c.auth_time, c.session_sid, u.email, u.name, u.email_verified,
      (SELECT count(*) FROM rt) AS refresh
    FROM c JOIN users u ON u.id = c.user_id
  `.compile(rt.db));
  const row = rows[0];
  if (!row) return undefined;
  const openid = row.scopes.includes('openid');
  const aud = resolveAudience(client, ctx.resources, row.resources, openid, rt.config.issuer);
  const authTime = Math.floor(new Date(row.auth_time).getTime() / 1000);
  const at = await signAccessToken(rt, { sub: row.user_id, clientId: client.clientId, scope: row.scopes, aud, authTime, sid: row.session_sid ?? undefined, familyId, preset: { jti, iat } });
  const response: TokenResponse = { access_token: at.token, token_type: 'Bearer', expires_in: rt.config.accessTokenTtl, scope: row.scopes.join(' ') };
  if (Number(row.refresh) > 0) response.refresh_token = refreshToken;
  if (openid) {
    const user = { id: row.user_id, email: row.email, name: row.name, email_verified: row.email_verified } as User;
    response.id_token = await signIdToken(rt, { clientId: client.clientId, alg: client.idTokenAlg as SigningAlg, user, scopes: row.scopes, authTime, nonce: row.nonce, sid: row.session_sid, accessToken: at.token });
  }
  return response;
}
import { insertFamily, insertRefreshToken, revokeFamiliesWhere } from '../store/refresh-families.js';

export const authorizationCodeGrant: Grant = {
  grantType: 'authorization_code',
  async handle(ctx) {
    const { rt, client, params } = ctx;
    const code = params.code;
    if (!code) throw new InvalidRequest('code is missing');
    if (code.length > 200) throw new InvalidGrant();
    let redirectUri = params.redirect_uri;
    if (!redirectUri) {
      if (client.redirectUris.length === 1) redirectUri = client.redirectUris[0];
      else throw new InvalidRequest('redirect_uri is missing');
    }
    const verifier = params.code_verifier;
    const now = new Date(rt.clock.now());
    for (const r of ctx.resources) if (!client.audiences.includes(r)) throw new InvalidTarget(`resource not allowed for this client: ${r}`);

    const fast = await redeemFast(ctx, code, redirectUri!, verifier, now);
    if (fast) return fast;

    let replayed: { codeDigest: string; userId: string } | undefined;
    const result = await rt.db.transaction().execute(async (trx) => {
      const stored = await lockCode(trx, code);
      if (!stored || stored.clientId !== client.clientId) throw new InvalidGrant('the code is invalid');
      if (stored.consumedAt) {
        replayed = { codeDigest: stored.codeDigest, userId: stored.userId };
        return undefined;
      }
      if (stored.expiresAt.getTime() <= now.getTime()) throw new InvalidGrant('the code has expired');
      if (stored.redirectUri !== redirectUri) throw new InvalidGrant('redirect_uri does not match the authorization request');
      if (stored.codeChallenge) {
        if (!verifier) throw new InvalidGrant('code_verifier is required');
        if (!verifierMatches(verifier, stored.codeChallenge)) throw new InvalidGrant('code_verifier does not match the code challenge');
      } else if (verifier !== undefined) {
        // RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a downgrade attempt
        throw new InvalidGrant('the code was issued without a code challenge');
      }
      const user = await findUserById(trx, stored.userId);
      if (!user || user.disabled) throw new InvalidGrant('the user is not active');
      if (stored.sessionSid) {
        // the login session that authorized the code must not have ended (logout) meanwhile
        const session = await trx.selectFrom('login_sessions').select('ended_at').where('sid', '=', stored.sessionSid).forShare().executeTakeFirst();
        if (session?.ended_at) throw new InvalidGrant('the login session has ended');
      }
      const openid = stored.scopes.includes('openid');
      const aud = resolveAudience(client, ctx.resources, stored.resources, openid, rt.config.issuer);
      await markCodeConsumed(trx, stored.codeDigest, now);

      // one family per redemption: it tracks every token this grant leads to, for revocation
      const familyId = crypto.randomUUID();
      const offline = stored.scopes.includes('offline_access');
      const wantsRefresh = client.grantTypes.includes('refresh_token') && (offline || client.refreshWithoutOffline);
      const authTime = Math.floor(stored.authTime.getTime() / 1000);
      const at = await signAccessToken(rt, {
        sub: user.id,
        clientId: client.clientId,
        scope: stored.scopes,
        aud,
        authTime,
        sid: stored.sessionSid ?? undefined,
        familyId,
      });
      await insertFamily(
        trx,
        {
          id: familyId,
          userId: user.id,
          clientId: client.clientId,
          scopes: stored.scopes,
          resources: aud.filter((a) => a !== `${rt.config.issuer}/userinfo`),
          authTime: stored.authTime,
          sessionSid: stored.sessionSid,
          offline,
          codeDigest: stored.codeDigest,
          ip: ctx.ip,
          userAgent: ctx.userAgent,
          accessTokenExp: at.exp,
        },
        now,
        rt.config.refreshIdleTtl,
        rt.config.refreshAbsoluteTtl,
      );
      const refresh = wantsRefresh ? await insertRefreshToken(trx, familyId, now) : undefined;
      const response: TokenResponse = { access_token: at.token, token_type: 'Bearer', expires_in: rt.config.accessTokenTtl, scope: stored.scopes.join(' ') };
      if (refresh) response.refresh_token = refresh.token;
      if (openid) {
        response.id_token = await signIdToken(rt, {
          clientId: client.clientId,
          alg: client.idTokenAlg as SigningAlg,
          user,
          scopes: stored.scopes,
          authTime,
          nonce: stored.nonce,
          sid: stored.sessionSid,
          accessToken: at.token,
        });
      }
      return response;
    });
    if (!result) {
      // RFC 6749 §4.1.2: a code used twice revokes what its first redemption issued
      const revoked = await rt.db.transaction().execute((trx) => revokeFamiliesWhere(trx, { codeDigest: replayed!.codeDigest }, 'code_replay', now));
      await ctx.afterRevocation();
      await ctx.audit({ type: 'code.replayed', userId: replayed!.userId, clientId: client.clientId, details: { families_revoked: revoked } });
      throw new InvalidGrant('the code was already used');
    }
    return result;
  },
};

// grant_type=refresh_token (RFC 6749 §6, RFC 9700 §4.14.2): rotation on every use. The presented
// token's row is locked, so two uses at once — on one replica or two — are serialized by the
// database: the first rotates, the second sees a consumed token. A consumed token presented again
// (after the grace period) revokes its whole family.
import type { SigningAlg } from '../config.js';
import { InvalidDpopProof, InvalidGrant, InvalidRequest, InvalidScope } from '../errors.js';
import { parseScope } from '../protocol/scopes.js';
import { resolveAudience } from '../protocol/audience.js';
import { findUserById } from '../store/users.js';
import { insertRefreshToken, revokeFamily } from '../store/refresh-families.js';
import { queueFamilyLogout } from '../store/logout-outbox.js';
import { metrics } from '../metrics/metrics.js';
import { signAccessToken } from '../tokens/access-token.js';
import { signIdToken } from '../tokens/id-token.js';
import { digest } from '../tokens/opaque.js';
import type { Grant, GrantContext, TokenResponse } from './types.js';
import { sql } from 'kysely';
import { randomToken } from '../tokens/opaque.js';
import { InvalidTarget } from '../errors.js';
import type { User } from '../db/types.js';

/**
 * The common case in one statement (one round trip, atomic on its own): consume the presented
 * token if — and only if — it is unconsumed, its family is live and the client's, the user is
 * active and the requested scope and resources are within the grant; insert its successor; record
 * the new access token's expiry in the family (its family key is denylisted until then when the
 * family is revoked). Concurrent uses of one token are serialized by the
 * row lock of the UPDATE: the loser sees `consumed_at` set and matches nothing. Returns undefined
 * when nothing was rotated (the slow path then says why).
 */
async function rotateFast(ctx: GrantContext, tokenDigest: string, requested: string[], now: Date): Promise<TokenResponse | undefined> {
  const { rt, client } = ctx;
  const next = randomToken(32);
  const nextDigest = digest(next);
  const iat = Math.floor(now.getTime() / 1000);
  const exp = iat + rt.config.accessTokenTtl;
  const idleExpires = new Date(now.getTime() + rt.config.refreshIdleTtl * 1000);
  const rows = await rt.dbh.prepared<{
    id: string;
    user_id: string;
    scopes: string[];
    resources: string[];
    auth_time: Date;
    session_sid: string | null;
    status_idx: string;
    email: string;
    name: string | null;
    email_verified: boolean;
  }>('latchkey_refresh_rotate', sql`
    WITH consumed AS (
      UPDATE refresh_tokens t SET consumed_at = ${now}, successor_digest = ${nextDigest}
      FROM refresh_families f JOIN users u ON u.id = f.user_id
      WHERE t.token_digest = ${tokenDigest} AND t.consumed_at IS NULL AND f.id = t.family_id
        -- "IS TRUE" keeps the client check out of index conditions: with stale statistics (a
        -- table that grew since the last ANALYZE) the planner otherwise walks the client's live
        -- families through refresh_families_client_live instead of taking t.family_id's row
        AND (f.client_id = ${client.clientId}) IS TRUE AND f.revoked_at IS NULL
        AND f.idle_expires_at > ${now} AND f.absolute_expires_at > ${now}
        AND NOT u.disabled
        AND f.scopes @> ${JSON.stringify(requested)}::jsonb
        AND (jsonb_array_length(f.resources) = 0 OR f.resources @> ${JSON.stringify(ctx.resources)}::jsonb)
        -- RFC 9449 §5: a bound family rotates only with a proof by its key
        AND (f.dpop_jkt IS NULL OR f.dpop_jkt = ${ctx.dpop?.jkt ?? ''}::text)
      RETURNING t.family_id
    ), successor AS (
      INSERT INTO refresh_tokens (token_digest, family_id, created_at)
      SELECT ${nextDigest}::text, family_id, ${now}::timestamptz FROM consumed
    ), fam AS (
      UPDATE refresh_families f SET
        last_used_at = ${now},
        idle_expires_at = LEAST(${idleExpires}::timestamptz, f.absolute_expires_at),
        access_expires_at = GREATEST(f.access_expires_at, ${new Date(exp * 1000)}::timestamptz)
      FROM consumed
      -- re-checked after a concurrent revocation commits: a revoked family gets no new token
      WHERE f.id = consumed.family_id AND f.revoked_at IS NULL
      RETURNING f.id, f.user_id, f.scopes, f.resources, f.auth_time, f.session_sid, f.status_idx::text AS status_idx
    )
    SELECT fam.*, u.email, u.name, u.email_verified FROM fam JOIN users u ON u.id = fam.user_id
  `.compile(rt.db));
  const row = rows[0];
  if (!row) return undefined;
  const scopes = requested.length ? requested : row.scopes;
  const openid = scopes.includes('openid');
  const aud = resolveAudience(client, ctx.resources, row.resources, openid, rt.config.issuer);
  const authTime = Math.floor(new Date(row.auth_time).getTime() / 1000);
  const at = await signAccessToken(rt, { sub: row.user_id, clientId: client.clientId, scope: scopes, aud, authTime, sid: row.session_sid ?? undefined, familyId: row.id, iat, statusIdx: row.status_idx, jkt: ctx.dpop?.jkt });
  const response: TokenResponse = { access_token: at.token, token_type: ctx.dpop ? 'DPoP' : 'Bearer', expires_in: rt.config.accessTokenTtl, scope: scopes.join(' '), refresh_token: next };
  if (openid) {
    const user = { id: row.user_id, email: row.email, name: row.name, email_verified: row.email_verified } as User;
    response.id_token = await signIdToken(rt, { clientId: client.clientId, alg: client.idTokenAlg as SigningAlg, user, scopes, authTime, sid: row.session_sid, accessToken: at.token });
  }
  return response;
}

type Outcome = { ok: TokenResponse } | { reuse: { familyId: string; userId: string; revoked: boolean } };

export const refreshTokenGrant: Grant = {
  grantType: 'refresh_token',
  async handle(ctx) {
    const { rt, client, params } = ctx;
    const presented = params.refresh_token;
    if (!presented) throw new InvalidRequest('refresh_token is missing');
    if (presented.length > 200) throw new InvalidGrant();
    const requested = parseScope(params.scope);
    if (!requested) throw new InvalidScope('scope is malformed');
    const now = new Date(rt.clock.now());
    const tokenDigest = digest(presented);
    for (const r of ctx.resources) if (!client.audiences.includes(r)) throw new InvalidTarget(`resource not allowed for this client: ${r}`);

    const fast = await rotateFast(ctx, tokenDigest, requested, now);
    if (fast) return fast;

    // the slow path: find out why the fast path did not rotate (or rotate, when it was only a
    // scope or resource request that needs the full checks), in one locked transaction
    const outcome: Outcome = await rt.db.transaction().execute(async (trx): Promise<Outcome> => {
      const token = await trx.selectFrom('refresh_tokens').selectAll().where('token_digest', '=', tokenDigest).forUpdate().executeTakeFirst();
      if (!token) throw new InvalidGrant('the refresh token is invalid');
      const family = await trx.selectFrom('refresh_families').selectAll().where('id', '=', token.family_id).forUpdate().executeTakeFirstOrThrow();
      // presented by another client: refused, and nothing changes
      if (family.client_id !== client.clientId) throw new InvalidGrant('the refresh token is invalid');
      // bound to a DPoP key (RFC 9449 §5): without a proof by that key nothing changes, not even reuse detection
      if (family.dpop_jkt && family.dpop_jkt !== ctx.dpop?.jkt) {
        throw new InvalidDpopProof(ctx.dpop ? 'the DPoP proof key is not the key the refresh token is bound to' : 'the refresh token is bound to a DPoP key: send a DPoP proof');
      }
      if (family.revoked_at) throw new InvalidGrant('the refresh token was revoked');
      if (token.consumed_at) {
        const grace = rt.config.refreshReuseGraceSeconds * 1000;
        const withinGrace = grace > 0 && now.getTime() - token.consumed_at.getTime() <= grace;
        if (withinGrace) return { reuse: { familyId: family.id, userId: family.user_id, revoked: false } };
        await queueFamilyLogout(trx, { familyIds: [family.id] }, 'refresh_reuse', now);
        await revokeFamily(trx, family.id, 'refresh_reuse', now);
        return { reuse: { familyId: family.id, userId: family.user_id, revoked: true } };
      }
      if (family.idle_expires_at.getTime() <= now.getTime() || family.absolute_expires_at.getTime() <= now.getTime()) {
        throw new InvalidGrant('the refresh token has expired');
      }
      const user = await findUserById(trx, family.user_id);
      if (!user || user.disabled) throw new InvalidGrant('the user is not active');
      // the scope may be narrowed, never widened
      const widened = requested.filter((s) => !family.scopes.includes(s));
      if (widened.length) throw new InvalidScope(`scope exceeds the original grant: ${widened.join(' ')}`);
      const scopes = requested.length ? requested : family.scopes;
      const openid = scopes.includes('openid');
      const aud = resolveAudience(client, ctx.resources, family.resources, openid, rt.config.issuer);

      const authTime = Math.floor(family.auth_time.getTime() / 1000);
      const at = await signAccessToken(rt, { sub: user.id, clientId: client.clientId, scope: scopes, aud, authTime, sid: family.session_sid ?? undefined, familyId: family.id, statusIdx: family.status_idx, jkt: ctx.dpop?.jkt });
      const next = await insertRefreshToken(trx, family.id, now);
      const consumed = await trx
        .updateTable('refresh_tokens')
        .set({ consumed_at: now, successor_digest: next.tokenDigest })
        .where('token_digest', '=', tokenDigest)
        .where('consumed_at', 'is', null)
        .executeTakeFirst();
      if (Number(consumed.numUpdatedRows) !== 1) throw new InvalidGrant('the refresh token is invalid');
      await trx
        .updateTable('refresh_families')
        .set({
          last_used_at: now,
          idle_expires_at: new Date(Math.min(now.getTime() + rt.config.refreshIdleTtl * 1000, family.absolute_expires_at.getTime())),
          access_expires_at: new Date(Math.max(at.exp * 1000, family.access_expires_at?.getTime() ?? 0)),
        })
        .where('id', '=', family.id)
        .execute();
      const response: TokenResponse = {
        access_token: at.token,
        token_type: ctx.dpop ? 'DPoP' : 'Bearer',
        expires_in: rt.config.accessTokenTtl,
        scope: scopes.join(' '),
        refresh_token: next.token,
      };
      if (openid) {
        response.id_token = await signIdToken(rt, {
          clientId: client.clientId,
          alg: client.idTokenAlg as SigningAlg,
          user,
          scopes,
          authTime,
          sid: family.session_sid,
          accessToken: at.token,
        });
      }
      return { ok: response };
    });

    if ('ok' in outcome) return outcome.ok;
    if (outcome.reuse.revoked) {
      metrics.refreshReuse.inc();
      metrics.revocations.inc({ cause: 'refresh_reuse' });
      await ctx.afterRevocation();
      await ctx.audit({ type: 'refresh.reuse_detected', userId: outcome.reuse.userId, clientId: client.clientId, details: { family_id: outcome.reuse.familyId } });
    }
    throw new InvalidGrant('the refresh token was already used');
  },
};

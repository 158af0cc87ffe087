// grant_type=refresh_token (RFC 6749 §6, RFC 9700 §4.14.2): rotation on every use. A refresh token
// is sealed (src/tokens/refresh-tokens.ts): it names its family and a generation, and a rotation
// is one UPDATE of the family row that moves the generation on — only while it is still the
// presented one, so two uses at once, on one replica or two, are serialized by the row lock: the
// first rotates, the second sees a newer generation. A token of an older generation presented
// again (after the grace period) revokes its whole family.
//
// Tokens issued before the sealing (their digests in refresh_tokens) are looked up as before; their
// rotation consumes the digest row and issues a sealed successor.
import type { CompiledQuery, Kysely } from 'kysely';
import { consumeLegacyRefreshToken, lockFamilyRow, lockLegacyRefreshToken, rotationQuery } from '../store/grant-statements.js';
import type { SigningAlg } from '../core/config.js';
import { InvalidDpopProof, InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget } from '../core/errors.js';
import { parseScope } from '../core/vocabulary.js';
import { resolveAudience } from '../protocol/audience.js';
import { findUserById } from '../store/users.js';
import { revokeFamily } from '../store/refresh-families.js';
import { queueFamilyLogout } from '../store/logout-outbox.js';
import { metrics } from '../core/metrics.js';
import { signAccessToken } from '../tokens/access-token.js';
import { signIdToken } from '../tokens/id-token.js';
import { digest } from '../core/crypto.js';
import { looksSealed, openRefreshToken, sealRefreshToken, type RefreshTokenClaims } from '../tokens/refresh-tokens.js';
import type { Database, User } from '../db/types.js';
import type { Grant, GrantContext, TokenResponse } from './types.js';

/** The family row a rotation returns, with what the ID token needs of its user. */
interface Rotated {
  id: string;
  user_id: string;
  scopes: string[];
  resources: string[];
  auth_time: Date;
  session_sid: string | null;
  status_idx: string;
  generation: number;
  email: string;
  name: string | null;
  email_verified: boolean;
}

/**
 * The rotation, in one statement: move the family from `generation` to the next if — and only
 * if — that is its current generation, it is live and the client's, the user is active and the
 * requested scope and resources are within the grant, and a family bound to a DPoP key sees a
 * proof by that key; record the new access token's expiry (its
 * family key is denylisted until then when the family is revoked). None of the columns it writes
 * is indexed, so the update is HOT. Under a concurrent rotation or revocation the row lock makes it
 * re-check the committed row, and it matches nothing.
 */
function rotation(ctx: GrantContext, familyId: string, generation: number, requested: string[], now: Date, accessExp: number): CompiledQuery<Rotated> {
  const { rt, client } = ctx;
  return rotationQuery<Rotated>(rt.db, {
    familyId,
    generation,
    clientId: client.clientId,
    requested,
    resources: ctx.resources,
    jkt: ctx.dpop?.jkt ?? '',
    now,
    idleExpires: new Date(now.getTime() + rt.config.refreshIdleTtl * 1000),
    accessExpiresAt: new Date(accessExp * 1000),
  });
}

/** The token response for a family that was just rotated to `row.generation`. */
async function issue(ctx: GrantContext, row: Rotated, requested: string[], now: Date, iat: number): Promise<TokenResponse> {
  const { rt, client } = ctx;
  const scopes = requested.length ? requested : row.scopes;
  const openid = scopes.includes('openid');
  const aud = resolveAudience(client, ctx.resources, row.resources, openid, rt.config.issuer);
  const authTime = Math.floor(new Date(row.auth_time).getTime() / 1000);
  const at = await signAccessToken(rt, { sub: row.user_id, clientId: client.clientId, scope: scopes, aud, authTime, sid: row.session_sid ?? undefined, familyId: row.id, iat, statusIdx: row.status_idx, jkt: ctx.dpop?.jkt });
  const response: TokenResponse = {
    access_token: at.token,
    token_type: ctx.dpop ? 'DPoP' : 'Bearer',
    expires_in: rt.config.accessTokenTtl,
    scope: scopes.join(' '),
    refresh_token: sealRefreshToken(rt.refreshSecret, row.id, row.generation, now),
  };
  if (openid) {
    const user = { id: row.user_id, email: row.email, name: row.name, email_verified: row.email_verified } as User;
    response.id_token = await signIdToken(rt, { clientId: client.clientId, alg: client.idTokenAlg as SigningAlg, user, scopes, authTime, sid: row.session_sid, accessToken: at.token });
  }
  return response;
}

type Family = Awaited<ReturnType<typeof lockFamily>>;
const lockFamily = (trx: Kysely<Database>, id: string) => lockFamilyRow(trx, id);

/** RFC 9449 §5: a family bound to a DPoP key is used only with a proof by that key — without one nothing changes, not even reuse detection. */
function assertBinding(ctx: GrantContext, family: NonNullable<Family>): void {
  if (family.dpop_jkt && family.dpop_jkt !== ctx.dpop?.jkt) {
    throw new InvalidDpopProof(ctx.dpop ? 'the DPoP proof key is not the key the refresh token is bound to' : 'the refresh token is bound to a DPoP key: send a DPoP proof');
  }
}

/** Why a live, current token of `family` cannot be rotated (checked under the family's row lock). */
async function refusal(ctx: GrantContext, trx: Kysely<Database>, family: NonNullable<Family>, requested: string[], now: Date): Promise<Error | undefined> {
  if (family.idle_expires_at.getTime() <= now.getTime() || family.absolute_expires_at.getTime() <= now.getTime()) return new InvalidGrant('the refresh token has expired');
  const user = await findUserById(trx, family.user_id);
  if (!user || user.disabled) return new InvalidGrant('the user is not active');
  // the scope may be narrowed, never widened
  const widened = requested.filter((s) => !family.scopes.includes(s));
  if (widened.length) return new InvalidScope(`scope exceeds the original grant: ${widened.join(' ')}`);
  for (const r of ctx.resources) if (family.resources.length > 0 && !family.resources.includes(r)) return new InvalidTarget(`resource was not authorized: ${r}`);
  return undefined;
}

type Outcome = { ok: Rotated } | { reuse: { familyId: string; userId: string; revoked: boolean } };

/** A consumed token presented again: within the grace a duplicate, else the family is revoked. */
async function reuse(trx: Kysely<Database>, family: NonNullable<Family>, withinGrace: boolean, now: Date): Promise<Outcome> {
  if (withinGrace) return { reuse: { familyId: family.id, userId: family.user_id, revoked: false } };
  await queueFamilyLogout(trx, { familyIds: [family.id] }, 'refresh_reuse', now);
  await revokeFamily(trx, family.id, 'refresh_reuse', now);
  return { reuse: { familyId: family.id, userId: family.user_id, revoked: true } };
}

/**
 * Was the sealed token of generation `presented` (older than the family's) consumed within the
 * grace? Its successor's rotation time is known for the previous generation (`rotated_at`); for an
 * older one only a lower bound is, its issue time, so it counts as within the grace only when it
 * was issued within it (stricter than an exact record, never laxer).
 */
function sealedWithinGrace(ctx: GrantContext, family: NonNullable<Family>, presented: RefreshTokenClaims, now: Date): boolean {
  const grace = ctx.rt.config.refreshReuseGraceSeconds * 1000;
  if (grace <= 0) return false;
  const consumedAt = presented.generation === family.generation - 1 && family.rotated_at ? family.rotated_at : presented.issuedAt;
  return now.getTime() - consumedAt.getTime() <= grace;
}

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
    const iat = Math.floor(now.getTime() / 1000);
    const accessExp = iat + rt.config.accessTokenTtl;
    for (const r of ctx.resources) if (!client.audiences.includes(r)) throw new InvalidTarget(`resource not allowed for this client: ${r}`);

    const sealed = openRefreshToken(rt.refreshSecret, presented);
    // a token of the sealed length that does not open is forged or altered: no lookup, no change
    if (!sealed && looksSealed(presented)) throw new InvalidGrant('the refresh token is invalid');

    if (sealed) {
      // the common case: one statement, one round trip
      const [row] = await rt.dbh.prepared<Rotated>('latchkey_refresh_rotate', rotation(ctx, sealed.familyId, sealed.generation, requested, now, accessExp));
      if (row) return issue(ctx, row, requested, now, iat);
    }

    // why it did not rotate — or, for a token from before the sealing, rotate it — in one
    // transaction holding the family's row lock
    const outcome: Outcome = await rt.db.transaction().execute(async (trx): Promise<Outcome> => {
      let family: Family;
      if (sealed) {
        family = await lockFamily(trx, sealed.familyId);
        // presented by another client: refused, and nothing changes
        if (!family || family.client_id !== client.clientId) throw new InvalidGrant('the refresh token is invalid');
        assertBinding(ctx, family);
        if (family.revoked_at) throw new InvalidGrant('the refresh token was revoked');
        // a generation the family never reached (a database restored from an older backup): refused, nothing changes
        if (sealed.generation > family.generation) throw new InvalidGrant('the refresh token is invalid');
        if (sealed.generation < family.generation) return reuse(trx, family, sealedWithinGrace(ctx, family, sealed, now), now);
      } else {
        const tokenDigest = digest(presented);
        const token = await lockLegacyRefreshToken(trx, tokenDigest);
        if (!token) throw new InvalidGrant('the refresh token is invalid');
        family = await lockFamily(trx, token.family_id);
        if (!family || family.client_id !== client.clientId) throw new InvalidGrant('the refresh token is invalid');
        assertBinding(ctx, family);
        if (family.revoked_at) throw new InvalidGrant('the refresh token was revoked');
        if (token.consumed_at) {
          const grace = rt.config.refreshReuseGraceSeconds * 1000;
          return reuse(trx, family, grace > 0 && now.getTime() - token.consumed_at.getTime() <= grace, now);
        }
      }
      const refused = await refusal(ctx, trx, family, requested, now);
      if (refused) throw refused;
      // a token from before the sealing is consumed for good; its successor is sealed (no successor_digest)
      if (!sealed) await consumeLegacyRefreshToken(trx, digest(presented), now);
      const { rows } = await trx.executeQuery(rotation(ctx, family.id, family.generation, requested, now, accessExp));
      if (!rows[0]) throw new InvalidGrant('the refresh token is invalid');
      return { ok: rows[0] };
    });

    if ('ok' in outcome) return issue(ctx, outcome.ok, requested, now, iat);
    if (outcome.reuse.revoked) {
      metrics.refreshReuse.inc();
      metrics.revocations.inc({ cause: 'refresh_reuse' });
      await ctx.afterRevocation();
      await ctx.audit({ type: 'refresh.reuse_detected', userId: outcome.reuse.userId, clientId: client.clientId, details: { family_id: outcome.reuse.familyId } });
    }
    throw new InvalidGrant('the refresh token was already used');
  },
};

// /revoke (RFC 7009): a refresh token revokes its family; an access token goes on the denylist,
// with its family (or, for client_credentials, its client's current status index).
// Unknown, expired or malformed tokens answer 200; another client's token is refused (§2.1).
// A public client's DPoP-bound token is revoked only with a proof by its key: anyone may send a
// public client's id, so without it a thief holding an old bound token could end the holder's grant.
import type { FastifyInstance } from 'fastify';
import type { FastifyRequest } from 'fastify';
import { InvalidDpopProof, InvalidRequest, UnauthorizedClient } from '../../core/errors.js';
import { denylist, revokeFamily } from '../../store/refresh-families.js';
import { findRefreshToken } from '../../tokens/refresh-tokens.js';
import { statusDenyKey } from '../../core/channels.js';
import { rotateClientStatusIndex } from '../../store/clients.js';
import { statusIndexOf } from '../../tokens/status-list.js';
import { metrics } from '../../core/metrics.js';
import { verifyAccessToken } from '../../tokens/access-token.js';
import { authenticateClient, singleParams, type FormParams } from '../client-authentication.js';
import { consumeProof, endpointProof } from '../dpop.js';
import type { Client } from '../../core/model.js';
import { FormBody } from '../schemas/form.js';
import type { Services } from '../services.js';

export function registerRevocation(app: FastifyInstance, svc: Services): void {
  /** RFC 9449 §5, §7: a public client proves possession of the key its token is bound to; nothing is written otherwise. */
  async function assertHolder(req: FastifyRequest, client: Client, jkt: string | null | undefined): Promise<void> {
    if (!client.isPublic || !jkt) return;
    const proof = await endpointProof(svc, req);
    if (!proof) throw new InvalidDpopProof('the token is DPoP-bound: send a DPoP proof by its key');
    if (proof.jkt !== jkt) throw new InvalidDpopProof('the DPoP proof key is not the key the token is bound to');
    await consumeProof(svc, proof);
  }

  app.post('/revoke', { schema: { body: FormBody } }, async (req, reply) => {
    reply.header('cache-control', 'no-store');
    const params = singleParams((req.body ?? {}) as FormParams);
    const client = await authenticateClient(svc, req, params);
    const token = params.token;
    if (!token) throw new InvalidRequest('token is missing');
    // the hint only orders the lookups (RFC 7009 §2.1); an unknown hint is ignored
    const jwtLike = token.split('.').length === 3;
    const now = svc.now();

    if (!jwtLike && token.length <= 200) {
      const found = await findRefreshToken(svc.rt.db, svc.rt.refreshSecret, token);
      if (found) {
        if (found.clientId !== client.clientId) throw new UnauthorizedClient('the token was not issued to this client');
        if (!found.revokedAt) {
          await assertHolder(req, client, found.dpopJkt);
          if (await svc.rt.db.transaction().execute((trx) => revokeFamily(trx, found.familyId, 'revoked_by_client', now))) metrics.revocations.inc({ cause: 'revoked_by_client' });
          await svc.denylist.sync();
          await svc.audit(req, { type: 'refresh.revoked', userId: found.userId, clientId: client.clientId, details: { family_id: found.familyId } });
        }
      }
      return reply.code(200).send();
    }

    if (jwtLike) {
      let claims;
      try {
        // signature and issuer must check out, expiry need not (an expired token is a no-op)
        ({ claims } = await verifyAccessToken(svc.rt, token));
      } catch {
        claims = undefined;
      }
      if (claims) {
        if (claims.client_id !== client.clientId) throw new UnauthorizedClient('the token was not issued to this client');
        await assertHolder(req, client, claims.cnf?.jkt);
        const verified = claims;
        const statusIdx = statusIndexOf(svc.config.issuer, verified.status);
        // RFC 7009 §2.1 lets revoking an access token revoke its grant: a family's tokens share its
        // status index, so the family ends with the token; a client_credentials client's tokens
        // share the client's index, which moves on for the tokens issued after — the old one stays
        // listed until the last token issued with it (at most ACCESS_TOKEN_TTL from now) has expired
        const added = await svc.rt.db.transaction().execute(async (trx) => {
          const family = verified.fid ? await revokeFamily(trx, verified.fid, 'access_token_revoked', now) : false;
          const rows: Array<{ jti: string; exp: number; statusIdx?: number }> = [{ jti: verified.jti, exp: verified.exp, ...(statusIdx === undefined ? {} : { statusIdx }) }];
          if (!verified.fid && statusIdx !== undefined) rows.push({ jti: statusDenyKey(statusIdx), exp: Math.floor(now.getTime() / 1000) + svc.config.accessTokenTtl, statusIdx });
          const n = await denylist(trx, rows, now);
          if (!verified.fid && statusIdx !== undefined) await rotateClientStatusIndex(trx, client.clientId, String(statusIdx));
          return family || n > 0;
        });
        // this replica's next client_credentials token already carries the client's new index
        if (!verified.fid) svc.clients.invalidate(client.clientId);
        if (added) {
          metrics.revocations.inc({ cause: 'access_token_revoked' });
          await svc.denylist.sync();
          await svc.audit(req, { type: 'access_token.revoked', userId: claims.sub === client.clientId ? null : claims.sub, clientId: client.clientId, details: { jti: claims.jti } });
        }
      }
      // malformed, foreign or expired: nothing to revoke
    }
    return reply.code(200).send();
  });
}

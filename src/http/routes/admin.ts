// The admin API under /admin/: Bearer access tokens of this server with the scope latchkey:admin
// and the audience ${ISSUER}/admin (client_credentials of clients created with --admin).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { InsufficientScope, NotFound, OAuthError } from '../../core/errors.js';
import { ADMIN_SCOPE } from '../../core/vocabulary.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../../accounts/passwords.js';
import type { AccessTokenGuard } from './userinfo.js';
import { presentedToken, verifyPresentedToken } from '../dpop.js';
import { DPOP_CHALLENGE_ALGS } from '../../core/errors.js';
import { OpsError, type Actor } from '../../ops/context.js';
import * as users from '../../ops/users.js';
import * as grants from '../../ops/grants.js';
import * as clients from '../../ops/clients.js';
import * as keys from '../../ops/keys.js';
import { readAudit, readLogoutNotices } from '../../ops/audit.js';
import type { Services } from '../services.js';

declare module 'fastify' {
  interface FastifyRequest {
    adminClientId?: string;
  }
}

const UserParams = Type.Object({ user: Type.String({ minLength: 1, maxLength: 320 }) });
// the exact UUID shape: anything looser (36 hex digits, 36 dashes) would reach the uuid column and fail there
const FamilyParams = Type.Object({ family: Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' }) });
const ClientParams = Type.Object({ client_id: Type.String({ minLength: 1, maxLength: 200 }) });
const AuditQuery = Type.Object({
  user: Type.Optional(Type.String({ maxLength: 320 })),
  type: Type.Optional(Type.String({ maxLength: 100 })),
  since: Type.Optional(Type.String({ maxLength: 40 })),
  until: Type.Optional(Type.String({ maxLength: 40 })),
  limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
});
const NoticesQuery = Type.Object({
  status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')])),
  client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
});
const PasswordBody = Type.Object({ password: Type.String({ minLength: MIN_PASSWORD_LENGTH, maxLength: MAX_PASSWORD_LENGTH }) }, { additionalProperties: false });

export function registerAdmin(app: FastifyInstance, svc: Services, guard: AccessTokenGuard): void {
  const audience = `${svc.config.issuer}/admin`;
  const renderError = (err: OAuthError, _req: FastifyRequest, reply: FastifyReply) => {
    const headers = err.headers;
    return reply.code(err.statusCode).headers(headers).header('cache-control', 'no-store').send(err.toJSON());
  };

  app.register(async (admin) => {
    admin.addHook('onRequest', async (req, reply) => {
      const presented = presentedToken(req);
      if (!presented) {
        // RFC 6750 §3.1: no error code when the request carried no token at all
        return reply
          .code(401)
          .header('www-authenticate', `Bearer realm="latchkey", scope="${ADMIN_SCOPE}", DPoP algs="${DPOP_CHALLENGE_ALGS}"`)
          .header('cache-control', 'no-store')
          .send({ error: 'invalid_token', error_description: 'an admin access token is required' });
      }
      const claims = await verifyPresentedToken(svc, req, presented, { audience, guard });
      if (!(claims.scope ?? '').split(' ').includes(ADMIN_SCOPE)) throw new InsufficientScope('the latchkey:admin scope is required', ADMIN_SCOPE);
      const client = await svc.clients.get(claims.client_id);
      if (!client || !client.isAdmin) throw new InsufficientScope('the client is not an admin client', ADMIN_SCOPE);
      // admin tokens come from client_credentials (sub = the client), never from a user's login
      // through an admin client that also has the authorization_code grant
      if (claims.sub !== claims.client_id) throw new InsufficientScope('admin tokens come from the client_credentials grant', ADMIN_SCOPE);
      req.adminClientId = client.clientId;
    });
    admin.addHook('onSend', async (_req, reply) => {
      reply.header('cache-control', 'no-store');
    });

    const actor = (req: FastifyRequest): Actor => ({ actor: `client:${req.adminClientId}`, ip: req.ip });
    const ctx = svc.ops;
    /** An ops refusal as the API's error: 404 not_found, 409 conflict / too_early (Retry-After), 400 otherwise. */
    const op = async <T>(fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof OpsError)) throw err;
        if (err.code === 'not_found') throw new NotFound(err.message);
        const status = err.code === 'conflict' || err.code === 'too_early' ? 409 : 400;
        throw new OAuthError(err.code, err.message, { status, headers: err.retryAfterSeconds !== undefined ? { 'retry-after': String(err.retryAfterSeconds) } : {} });
      }
    };

    admin.get<{ Params: { user: string } }>('/users/:user', { schema: { params: UserParams }, config: { renderError } }, async (req) => op(() => users.getUser(ctx, req.params.user)));

    // a user's grants (refresh-token families); /sessions is the older name of the same thing
    for (const name of ['grants', 'sessions']) {
      admin.get<{ Params: { user: string } }>(`/users/:user/${name}`, { schema: { params: UserParams }, config: { renderError } }, async (req) => ({
        [name]: await op(() => grants.listGrants(ctx, { user: req.params.user })),
      }));
      admin.delete<{ Params: { family: string } }>(`/${name}/:family`, { schema: { params: FamilyParams }, config: { renderError } }, async (req) =>
        op(() => grants.revokeGrant(ctx, actor(req), req.params.family)),
      );
      admin.post<{ Params: { client_id: string } }>(`/clients/:client_id/revoke-${name}`, { schema: { params: ClientParams }, config: { renderError } }, async (req) =>
        op(() => grants.revokeClientGrants(ctx, actor(req), req.params.client_id)),
      );
    }

    admin.post<{ Params: { user: string } }>('/users/:user/logout-everywhere', { schema: { params: UserParams }, config: { renderError } }, async (req) =>
      op(() => users.logoutEverywhere(ctx, actor(req), req.params.user)),
    );
    admin.post<{ Params: { user: string } }>('/users/:user/disable', { schema: { params: UserParams }, config: { renderError } }, async (req) =>
      op(() => users.disableUser(ctx, actor(req), req.params.user)),
    );
    admin.post<{ Params: { user: string } }>('/users/:user/enable', { schema: { params: UserParams }, config: { renderError } }, async (req) =>
      op(() => users.enableUser(ctx, actor(req), req.params.user)),
    );
    admin.put<{ Params: { user: string }; Body: { password: string } }>(
      '/users/:user/password',
      { schema: { params: UserParams, body: PasswordBody }, config: { renderError } },
      async (req) => op(() => users.setPassword(ctx, actor(req), req.params.user, req.body.password)),
    );

    // signing keys: the same operations as `latchkey keys list|rotate|revoke`
    admin.get('/keys', { config: { renderError } }, async () => ({ keys: await keys.listKeys(ctx) }));
    admin.post<{ Body: { alg?: string; now?: boolean } | undefined }>(
      '/keys/rotate',
      { schema: { body: Type.Optional(Type.Object({ alg: Type.Optional(Type.String({ maxLength: 10 })), now: Type.Optional(Type.Boolean()) }, { additionalProperties: false })) }, config: { renderError } },
      async (req) => op(() => keys.rotateKeys(ctx, actor(req), { alg: req.body?.alg, now: Boolean(req.body?.now) })),
    );
    admin.post<{ Params: { kid: string }; Body: { reason?: string } | undefined }>(
      '/keys/:kid/revoke',
      {
        schema: {
          params: Type.Object({ kid: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$' }) }),
          body: Type.Optional(Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false })),
        },
        config: { renderError },
      },
      async (req) => op(() => keys.revokeKey(ctx, actor(req), req.params.kid, req.body?.reason)),
    );

    admin.get('/clients', { config: { renderError } }, async () => ({ clients: await clients.listClients(ctx) }));
    admin.get<{ Params: { client_id: string } }>('/clients/:client_id', { schema: { params: ClientParams }, config: { renderError } }, async (req) =>
      op(() => clients.getClient(ctx, req.params.client_id)),
    );

    // the Back-Channel Logout outbox, as `latchkey logout-notices list`
    admin.get<{ Querystring: { status?: 'pending' | 'delivered' | 'failed'; client_id?: string; limit?: string } }>(
      '/logout-notices',
      { schema: { querystring: NoticesQuery }, config: { renderError } },
      async (req) => ({ notices: await op(() => readLogoutNotices(ctx, { status: req.query.status, client: req.query.client_id, limit: req.query.limit })) }),
    );

    admin.get<{ Querystring: { user?: string; type?: string; since?: string; until?: string; limit?: string } }>(
      '/audit',
      { schema: { querystring: AuditQuery }, config: { renderError } },
      async (req) => ({ events: await op(() => readAudit(ctx, req.query)) }),
    );
  }, { prefix: '/admin' });
}

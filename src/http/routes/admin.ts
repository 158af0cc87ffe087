// The admin API under /admin/: Bearer access tokens of this server with the scope latchkey:admin
// and the audience ${ISSUER}/admin (client_credentials of clients created with --admin).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { InsufficientScope, InvalidRequest, InvalidToken, NotFound, OAuthError } from '../../errors.js';
import { ADMIN_SCOPE } from '../../protocol/scopes.js';
import { findUserByIdOrEmail, isUuid, publicUser } from '../../store/users.js';
import { listFamilies } from '../../store/refresh-families.js';
import { metrics } from '../../metrics/metrics.js';
import { listAudit } from '../../store/audit.js';
import { findClient, listClients, publicClient } from '../../store/clients.js';
import { listNotices } from '../../store/logout-outbox.js';
import { changePassword, disableUser, enableUser, logoutEverywhere, revokeClientFamilies, revokeSession } from '../../accounts/lifecycle.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../../accounts/passwords.js';
import type { AccessTokenGuard } from './userinfo.js';
import { presentedToken, verifyPresentedToken } from '../dpop.js';
import { DPOP_CHALLENGE_ALGS } from '../../errors.js';
import { KeyLifecycleError, listKeys, revokeKey, rotateKeys } from '../../keys/rotation.js';
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

    const resolveUser = async (ref: string) => {
      const user = await findUserByIdOrEmail(svc.rt.db, ref);
      if (!user) throw new NotFound('no such user');
      return user;
    };
    const actor = (req: FastifyRequest) => `client:${req.adminClientId}`;

    admin.get<{ Params: { user: string } }>('/users/:user', { schema: { params: UserParams }, config: { renderError } }, async (req) =>
      publicUser(await resolveUser(req.params.user)),
    );

    admin.get<{ Params: { user: string } }>('/users/:user/sessions', { schema: { params: UserParams }, config: { renderError } }, async (req) => {
      const user = await resolveUser(req.params.user);
      return { sessions: await listFamilies(svc.rt.db, { userId: user.id }) };
    });

    admin.delete<{ Params: { family: string } }>('/sessions/:family', { schema: { params: FamilyParams }, config: { renderError } }, async (req) => {
      const fam = await svc.rt.db.selectFrom('refresh_families').select(['id', 'user_id', 'client_id']).where('id', '=', req.params.family).executeTakeFirst();
      if (!fam) throw new NotFound('no such session');
      const revoked = await revokeSession(svc.rt.db, fam.id, svc.now());
      await svc.denylist.sync();
      await svc.audit(req, { type: 'admin.session_revoked', actor: actor(req), userId: fam.user_id, clientId: fam.client_id, details: { family_id: fam.id } });
      return { id: fam.id, revoked: true, already_revoked: !revoked };
    });

    // the triggers tell every replica at commit (NOTIFY); this one drops its copies before it answers
    const userChanged = (userId: string) => {
      svc.users.invalidate(userId);
      svc.sessions.invalidate();
    };

    admin.post<{ Params: { user: string } }>('/users/:user/logout-everywhere', { schema: { params: UserParams }, config: { renderError } }, async (req) => {
      const user = await resolveUser(req.params.user);
      const ended = await logoutEverywhere(svc.rt.db, user.id, svc.now());
      userChanged(user.id);
      await svc.denylist.sync();
      await svc.audit(req, { type: 'admin.logout_everywhere', actor: actor(req), userId: user.id, details: { ...ended } });
      return { user_id: user.id, ...ended };
    });

    admin.post<{ Params: { client_id: string } }>('/clients/:client_id/revoke-sessions', { schema: { params: ClientParams }, config: { renderError } }, async (req) => {
      const client = await svc.clients.get(req.params.client_id);
      if (!client) throw new NotFound('no such client');
      const n = await revokeClientFamilies(svc.rt.db, client.clientId, svc.now());
      await svc.denylist.sync();
      await svc.audit(req, { type: 'admin.client_sessions_revoked', actor: actor(req), clientId: client.clientId, details: { families_revoked: n } });
      return { client_id: client.clientId, families_revoked: n };
    });

    admin.post<{ Params: { user: string } }>('/users/:user/disable', { schema: { params: UserParams }, config: { renderError } }, async (req) => {
      const user = await resolveUser(req.params.user);
      const ended = await disableUser(svc.rt.db, user.id, svc.now());
      userChanged(user.id);
      await svc.denylist.sync();
      await svc.audit(req, { type: 'admin.user_disabled', actor: actor(req), userId: user.id, details: { ...ended } });
      return { ...publicUser({ ...user, disabled: true }), ...ended };
    });

    admin.post<{ Params: { user: string } }>('/users/:user/enable', { schema: { params: UserParams }, config: { renderError } }, async (req) => {
      const user = await resolveUser(req.params.user);
      await enableUser(svc.rt.db, user.id, svc.now());
      userChanged(user.id);
      await svc.audit(req, { type: 'admin.user_enabled', actor: actor(req), userId: user.id });
      return publicUser({ ...user, disabled: false });
    });

    admin.put<{ Params: { user: string }; Body: { password: string } }>(
      '/users/:user/password',
      { schema: { params: UserParams, body: PasswordBody }, config: { renderError } },
      async (req) => {
        const user = await resolveUser(req.params.user);
        const hash = await svc.rt.passwords.hash(req.body.password);
        const ended = await changePassword(svc.rt.db, user.id, hash, svc.now());
        userChanged(user.id);
        await svc.denylist.sync();
        await svc.audit(req, { type: 'admin.password_changed', actor: actor(req), userId: user.id, details: { ...ended } });
        return { user_id: user.id, ...ended };
      },
    );

    // signing keys: the same operations as `latchkey keys list|rotate|revoke`
    const keyDeps = () => ({ db: svc.rt.db, kek: svc.rt.kek, clock: svc.rt.clock, config: svc.config });
    const keyChange = async <T>(fn: () => Promise<T>): Promise<T> => {
      try {
        const out = await fn();
        await svc.rt.keystore.reload();
        return out;
      } catch (err) {
        if (err instanceof KeyLifecycleError) {
          const status = err.code === 'not_found' ? 404 : err.code === 'conflict' || err.code === 'too_early' ? 409 : 400;
          const e = new OAuthError(err.code, err.message);
          Object.defineProperty(e, 'statusCode', { value: status });
          if (err.retryAfterSeconds !== undefined) Object.defineProperty(e, 'headers', { value: { 'retry-after': String(err.retryAfterSeconds) } });
          throw e;
        }
        throw err;
      }
    };
    admin.get('/keys', { config: { renderError } }, async () => ({ keys: await listKeys({ db: svc.rt.db, config: svc.config }) }));
    admin.post<{ Body: { alg?: string; now?: boolean } | undefined }>(
      '/keys/rotate',
      { schema: { body: Type.Optional(Type.Object({ alg: Type.Optional(Type.String({ maxLength: 10 })), now: Type.Optional(Type.Boolean()) }, { additionalProperties: false })) }, config: { renderError } },
      async (req) => keyChange(() => rotateKeys(keyDeps(), { actor: actor(req), ip: req.ip, alg: req.body?.alg, now: Boolean(req.body?.now) })),
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
      async (req) => {
        const out = await keyChange(() => revokeKey(keyDeps(), req.params.kid, { actor: actor(req), ip: req.ip, reason: req.body?.reason }));
        return out;
      },
    );

    admin.get('/clients', { config: { renderError } }, async () => ({ clients: (await listClients(svc.rt.db)).map(publicClient) }));
    admin.get<{ Params: { client_id: string } }>('/clients/:client_id', { schema: { params: ClientParams }, config: { renderError } }, async (req) => {
      const client = await findClient(svc.rt.db, req.params.client_id);
      if (!client) throw new NotFound('no such client');
      return publicClient(client);
    });

    // the Back-Channel Logout outbox, as `latchkey logout-notices list`
    admin.get<{ Querystring: { status?: 'pending' | 'delivered' | 'failed'; client_id?: string; limit?: string } }>(
      '/logout-notices',
      { schema: { querystring: NoticesQuery }, config: { renderError } },
      async (req) => ({ notices: await listNotices(svc.rt.db, { status: req.query.status, clientId: req.query.client_id, limit: req.query.limit ? Number(req.query.limit) : 100 }) }),
    );

    admin.get<{ Querystring: { user?: string; type?: string; since?: string; until?: string; limit?: string } }>(
      '/audit',
      { schema: { querystring: AuditQuery }, config: { renderError } },
      async (req) => {
        const q = req.query;
        const date = (s: string | undefined, name: string) => {
          if (s === undefined) return undefined;
          const d = new Date(s);
          // JavaScript dates reach ±275760 years, the timestamptz column does not: bound them here
          if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1 || d.getUTCFullYear() > 9999) throw new InvalidRequest(`${name} must be an ISO 8601 time`);
          return d;
        };
        let userId: string | undefined;
        if (q.user) userId = isUuid(q.user) ? q.user : (await resolveUser(q.user)).id;
        return { events: await listAudit(svc.rt.db, { userId, type: q.type, since: date(q.since, 'since'), until: date(q.until, 'until'), limit: q.limit ? Number(q.limit) : 100 }) };
      },
    );
  }, { prefix: '/admin' });
}

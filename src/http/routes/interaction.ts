// The login and consent pages of an interaction. The pending request travels sealed with the
// interaction (the `s` query parameter, then the `interaction` form field); nothing is stored
// until the user has logged in. Each POST is checked for its origin, its CSRF token (bound to the
// interaction) and the interaction cookie (bound to this browser).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { AccessDenied, OAuthError, TooManyFailures } from '../../core/errors.js';
import { consumeInteraction, InteractionTooLarge, MAX_SEALED_INTERACTION, openInteraction, sealInteraction, type Interaction } from '../../store/interactions.js';
import { findUserByEmail, findUserById, lockUser, setPasswordHash } from '../../store/users.js';
import { createLoginSession, endSessionByCookie, type LoginSession } from '../../store/login-sessions.js';
import { digest } from '../../core/crypto.js';
import { audiencesToConsent, rememberConsent } from '../../store/consents.js';
import { MAX_PASSWORD_LENGTH } from '../../accounts/passwords.js';
import { clearCookieOptions, cookieOptions, csrfMatches, csrfToken, isSameOrigin, readSignedCookie, sendPage } from '../browser.js';
import { busyPage, consentPage, errorPage, loginPage } from '../views/pages.js';
import { codeResponse, currentSession, errorResponse, needsConsent, redirect303, sendAuthorizationResponse } from '../authorization-flow.js';
import { interactionUrl } from './authorize.js';
import type { Services } from '../services.js';
import { metrics } from '../../core/metrics.js';

const IdParams = Type.Object({ id: Type.String({ minLength: 20, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$' }) });
const Sealed = Type.Optional(Type.String({ maxLength: MAX_SEALED_INTERACTION }));
const InteractionQuery = Type.Object({ s: Sealed });
const LoginBody = Type.Object({
  csrf: Type.Optional(Type.String({ maxLength: 200 })),
  interaction: Sealed,
  username: Type.Optional(Type.String({ maxLength: 320 })),
  password: Type.Optional(Type.String({ maxLength: MAX_PASSWORD_LENGTH })),
});
const ConsentBody = Type.Object({
  csrf: Type.Optional(Type.String({ maxLength: 200 })),
  interaction: Sealed,
  decision: Type.Optional(Type.String({ maxLength: 20 })),
});

const GENERIC_LOGIN_ERROR = 'The email or password is incorrect.';
const EXPIRED = 'This sign-in request has expired or was started in another browser. Go back to the application and start again.';

export function registerInteraction(app: FastifyInstance, svc: Services): void {
  const { config } = svc;
  const csrfFor = (i: Interaction) => csrfToken(svc.rt.csrfSecret, 'interaction', i.idDigest);

  async function load(req: FastifyRequest<{ Params: { id: string } }>): Promise<Interaction | undefined> {
    const id = req.params.id;
    // the interaction must have been started in this browser
    if (readSignedCookie(req, svc.cookies.interaction) !== id) return undefined;
    const sealed = req.method === 'GET' ? (req.query as { s?: string }).s : (req.body as { interaction?: string } | undefined)?.interaction;
    return openInteraction(svc.rt.codeSecret, id, sealed, svc.now());
  }

  const renderError = (err: OAuthError, req: FastifyRequest, reply: FastifyReply) => {
    // 503 (the password-hashing queue is full) and 429 keep their status and Retry-After
    const status = err.statusCode === 503 || err.statusCode === 429 ? err.statusCode : err.statusCode >= 500 ? 500 : 400;
    if (err.headers['retry-after']) reply.header('retry-after', err.headers['retry-after']);
    // a full queue is not the user's error: a page that brings them back to the form by itself
    const id = (req.params as { id?: string } | undefined)?.id;
    if (status === 503 && id) {
      // back to the same interaction: its request travels sealed, in the form that was posted
      const sealed = (req.body as { interaction?: string } | undefined)?.interaction ?? (req.query as { s?: string } | undefined)?.s;
      const next = sealed ? interactionUrl(svc, id, sealed) : `${config.issuer}/interaction/${id}`;
      return sendPage(reply, config, 503, busyPage({ retryAfter: Math.max(1, Number(err.headers['retry-after']) || 2), next }));
    }
    return sendPage(reply, config, status, errorPage(err.error, status === 500 ? 'Something went wrong on our side.' : err.description));
  };

  // the form posts from a form_post page go to the client too
  async function renderLogin(reply: FastifyReply, id: string, i: Interaction, status = 200, error?: string, email?: string) {
    const client = await svc.clients.get(i.clientId);
    return sendPage(
      reply,
      config,
      status,
      loginPage({
        action: `${config.issuer}/interaction/${id}/login`,
        csrf: csrfFor(i),
        interaction: sealInteraction(svc.rt.codeSecret, i),
        clientName: client?.name ?? i.clientId,
        email: email ?? i.request.loginHint,
        error,
        lang: i.request.uiLocale,
      }),
      [i.request.redirectUri],
    );
  }

  async function renderConsent(reply: FastifyReply, id: string, i: Interaction, userId: string) {
    const client = await svc.clients.get(i.clientId);
    const user = await findUserById(svc.rt.db, userId);
    return sendPage(
      reply,
      config,
      200,
      consentPage({
        action: `${config.issuer}/interaction/${id}/consent`,
        csrf: csrfFor(i),
        interaction: sealInteraction(svc.rt.codeSecret, i),
        clientName: client?.name ?? i.clientId,
        scopes: i.request.scopes,
        audiences: audiencesToConsent(i.request.resources, client?.audiences ?? []),
        email: user?.email ?? '',
        lang: i.request.uiLocale,
      }),
      [i.request.redirectUri],
    );
  }

  /**
   * The checks every form POST of an interaction passes: same origin, a live interaction started in
   * this browser, and its CSRF token. Sends the error page and returns undefined when one fails.
   */
  async function checkFormPost(req: FastifyRequest<{ Params: { id: string }; Body: { csrf?: string } }>, reply: FastifyReply): Promise<Interaction | undefined> {
    if (!isSameOrigin(req, config.issuer)) {
      sendPage(reply, config, 403, errorPage('access_denied', 'This form was submitted from another site.'));
      return undefined;
    }
    if (readSignedCookie(req, svc.cookies.interaction) !== req.params.id) {
      sendPage(reply, config, 400, errorPage('invalid_request', EXPIRED));
      return undefined;
    }
    if (!csrfMatches(svc.rt.csrfSecret, 'interaction', digest(req.params.id), req.body?.csrf)) {
      sendPage(reply, config, 403, errorPage('access_denied', 'The form has expired. Go back and try again.'));
      return undefined;
    }
    const i = await load(req);
    if (!i) {
      sendPage(reply, config, 400, errorPage('invalid_request', EXPIRED));
      return undefined;
    }
    return i;
  }

  /** The login session this interaction may continue with, if any. */
  async function sessionFor(req: FastifyRequest, i: Interaction): Promise<LoginSession | undefined> {
    if (!i.sessionSid) return undefined;
    const s = await currentSession(svc, req);
    return s && s.sid === i.sessionSid && s.userId === i.userId ? s : undefined;
  }

  async function finish(reply: FastifyReply, i: Interaction, session: LoginSession) {
    const client = await svc.clients.get(i.clientId);
    if (!client) return sendPage(reply, config, 400, errorPage('invalid_client', 'unknown client'));
    if (await needsConsent(svc, client, session.userId, i.request)) {
      // prompt=consent asks once per interaction: after approval in this interaction, continue
      let sealed: string;
      try {
        sealed = sealInteraction(svc.rt.codeSecret, i);
      } catch (err) {
        if (err instanceof InteractionTooLarge) return sendPage(reply, config, 400, errorPage('invalid_request', err.message));
        throw err;
      }
      return redirect303(reply, interactionUrl(svc, i.id, sealed));
    }
    if (!(await consumeInteraction(svc.rt.db, i, svc.now()))) return sendPage(reply, config, 400, errorPage('invalid_request', EXPIRED));
    reply.clearCookie(svc.cookies.interaction, clearCookieOptions(config));
    return sendAuthorizationResponse(reply, codeResponse(svc, i.request, session));
  }

  app.get<{ Params: { id: string } }>('/interaction/:id', { schema: { params: IdParams, querystring: InteractionQuery }, config: { renderError } }, async (req, reply) => {
    const i = await load(req);
    if (!i) return sendPage(reply, config, 400, errorPage('invalid_request', EXPIRED));
    const session = await sessionFor(req, i);
    if (session) return renderConsent(reply, req.params.id, i, session.userId);
    return renderLogin(reply, req.params.id, i);
  });

  app.post<{ Params: { id: string }; Body: { csrf?: string; interaction?: string; username?: string; password?: string } }>(
    '/interaction/:id/login',
    { schema: { params: IdParams, body: LoginBody }, config: { renderError } },
    async (req, reply) => {
      const i = await checkFormPost(req, reply);
      if (!i) return reply;
      const email = (req.body?.username ?? '').trim();
      const password = req.body?.password ?? '';
      // the attempt is counted before the hash, so concurrent attempts cannot pass the limit
      let attempt;
      try {
        attempt = await svc.limits.login.begin(req, email);
      } catch (err) {
        if (err instanceof TooManyFailures) {
          reply.header('retry-after', err.headers['retry-after']);
          metrics.logins.inc({ result: 'throttled' });
          return renderLogin(reply, req.params.id, i, 429, 'Too many failed attempts. Wait a while and try again.', email);
        }
        throw err;
      }
      let user, ok;
      try {
        user = email ? await findUserByEmail(svc.rt.db, email) : undefined;
        // unknown emails cost the same argon2 verification as wrong passwords
        ok = user ? await svc.rt.passwords.verify(user.password_hash, password) : await svc.rt.passwords.verifyDummy(password);
      } catch (err) {
        // not judged (the hashing queue is full, the database failed): it does not count
        await attempt.uncount();
        throw err;
      }
      if (!user || !ok || user.disabled) {
        // a failure stays counted
        metrics.logins.inc({ result: 'failure' });
        await svc.audit(req, { type: 'login.failure', userId: user?.id ?? null, clientId: i.clientId, details: { reason: !user ? 'unknown_user' : user.disabled ? 'disabled' : 'bad_password' } });
        return renderLogin(reply, req.params.id, i, 401, GENERIC_LOGIN_ERROR, email);
      }
      await attempt.uncount();
      const verified = user;
      const rehash = svc.rt.passwords.needsRehash(verified.password_hash) ? await svc.rt.passwords.hash(password) : undefined;
      // a new session id at every login (no fixation); the previous one ends
      const previous = readSignedCookie(req, svc.cookies.session);
      if (previous) {
        await endSessionByCookie(svc.rt.db, previous, svc.now());
        svc.sessions.invalidate(digest(previous));
      }
      // The user row was read before argon2: a new password, a disable or a "logout everywhere"
      // may have committed since. The session is created only if the hash just verified is still
      // the user's and the user is active, under a lock those changes wait for (src/accounts/lifecycle.ts).
      const created = await svc.rt.db.transaction().execute(async (trx) => {
        const current = await lockUser(trx, verified.id, rehash ? 'update' : 'share');
        if (!current || current.disabled || current.password_hash !== verified.password_hash) return undefined;
        if (rehash) await setPasswordHash(trx, verified.id, rehash, svc.now());
        return createLoginSession(trx, {
          userId: verified.id,
          at: svc.now(),
          idleTtl: config.sessionIdleTtl,
          absoluteTtl: config.sessionAbsoluteTtl,
          ip: req.ip,
          userAgent: req.headers['user-agent'],
        });
      });
      if (!created) {
        metrics.logins.inc({ result: 'failure' });
        await svc.audit(req, { type: 'login.failure', userId: user.id, clientId: i.clientId, details: { reason: 'credentials_changed' } });
        return renderLogin(reply, req.params.id, i, 401, GENERIC_LOGIN_ERROR, email);
      }
      const { cookieValue, session } = created;
      reply.setCookie(svc.cookies.session, cookieValue, cookieOptions(config, config.sessionAbsoluteTtl));
      metrics.logins.inc({ result: 'success' });
      await svc.audit(req, { type: 'login.success', userId: user.id, clientId: i.clientId, details: { sid: session.sid } });
      return finish(reply, { ...i, userId: user.id, sessionSid: session.sid, loginDone: true }, session);
    },
  );

  app.post<{ Params: { id: string }; Body: { csrf?: string; interaction?: string; decision?: string } }>(
    '/interaction/:id/consent',
    { schema: { params: IdParams, body: ConsentBody }, config: { renderError } },
    async (req, reply) => {
      const i = await checkFormPost(req, reply);
      if (!i) return reply;
      const session = await sessionFor(req, i);
      if (!session) return renderLogin(reply, req.params.id, i);
      const decision = req.body?.decision;
      if (decision !== 'approve' && decision !== 'deny') return sendPage(reply, config, 400, errorPage('invalid_request', 'Choose allow or deny.'));
      if (!(await consumeInteraction(svc.rt.db, i, svc.now()))) return sendPage(reply, config, 400, errorPage('invalid_request', EXPIRED));
      reply.clearCookie(svc.cookies.interaction, clearCookieOptions(config));
      if (decision === 'deny') {
        await svc.audit(req, { type: 'consent.denied', userId: session.userId, clientId: i.clientId, details: { scopes: i.request.scopes } });
        return sendAuthorizationResponse(reply, errorResponse(svc, i.request.redirectUri, new AccessDenied('the user denied the request'), i.request.state, i.request.responseMode));
      }
      const client = await svc.clients.get(i.clientId);
      const audiences = audiencesToConsent(i.request.resources, client?.audiences ?? []);
      await rememberConsent(svc.rt.db, session.userId, i.clientId, { scopes: i.request.scopes, audiences }, svc.now());
      await svc.audit(req, { type: 'consent.granted', userId: session.userId, clientId: i.clientId, details: { scopes: i.request.scopes, audiences } });
      return sendAuthorizationResponse(reply, codeResponse(svc, i.request, session));
    },
  );
}

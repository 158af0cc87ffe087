// RP-Initiated Logout 1.0 (end_session_endpoint): ends the login session in this browser and
// revokes the families created in it that were not granted offline_access (OIDC Core §11).
// The session ends without a question only for a current id_token_hint issued in this very login
// session (its `sid` and `sub` are the session's, RP-Initiated Logout 1.0 §2–3); any other hint —
// from an earlier session, for another user, without `sid`, or expired — still identifies the RP
// (client_id, post_logout_redirect_uri) but the user confirms first, so that an old or leaked ID
// token cannot end a session with a cross-site GET. post_logout_redirect_uri must match a
// registered one exactly, else we show an error page and never redirect.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { verifyIdTokenHint } from '../../tokens/id-token.js';
import { Type } from 'typebox';
import { endSessionByCookie } from '../../store/login-sessions.js';
import { digest } from '../../core/crypto.js';
import { revokeFamiliesWhere } from '../../store/refresh-families.js';
import { queueSessionLogout } from '../../store/logout-outbox.js';
import { metrics } from '../../core/metrics.js';
import { buildRedirect } from '../../protocol/authorization-request.js';
import { clearCookieOptions, csrfMatches, csrfToken, isSameOrigin, readSignedCookie, sendPage } from '../browser.js';
import { errorPage, loggedOutPage, logoutConfirmPage } from '../views/pages.js';
import { currentSession, redirect303 } from '../authorization-flow.js';
import type { Services } from '../services.js';

const Params = Type.Record(Type.String({ maxLength: 100 }), Type.String({ maxLength: 8192 }), { maxProperties: 20 });

interface HintClaims {
  sub: string;
  aud: string[];
  sid?: string;
  /** exp (+ leeway) is still ahead: only such a hint may end a session without confirmation. */
  current: boolean;
}

export function registerEndSession(app: FastifyInstance, svc: Services): void {
  const { config } = svc;

  /** One check for every id_token_hint (src/tokens/id-token.ts), plus whether it is still current. */
  async function verifyHint(hint: string): Promise<HintClaims | undefined> {
    const h = await verifyIdTokenHint(svc.rt, hint);
    if (!h) return undefined;
    const current = h.exp !== undefined && svc.now().getTime() < (h.exp + config.clockLeewaySeconds) * 1000;
    return { sub: h.sub, aud: h.aud, sid: h.sid, current };
  }

  const csrfBinding = (req: FastifyRequest) => readSignedCookie(req, svc.cookies.session) ?? 'anonymous';

  async function endHere(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const cookie = readSignedCookie(req, svc.cookies.session);
    reply.clearCookie(svc.cookies.session, clearCookieOptions(svc.config));
    if (!cookie) return;
    const now = svc.now();
    const result = await svc.rt.db.transaction().execute(async (trx) => {
      const sid = await endSessionByCookie(trx, cookie, now);
      if (sid) await queueSessionLogout(trx, sid, 'logout', now);
      const families = sid ? await revokeFamiliesWhere(trx, { sessionSid: sid, onlyOnline: true }, 'logout', now) : 0;
      return { sid, families };
    });
    // the trigger tells every replica at commit; this one need not wait for it
    svc.sessions.invalidate(digest(cookie));
    if (result.sid) {
      metrics.revocations.inc({ cause: 'logout' }, result.families);
      await svc.denylist.sync();
      await svc.audit(req, { type: 'logout', details: { sid: result.sid, families_revoked: result.families } });
    }
  }

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const p = ((req.method === 'GET' ? req.query : req.body) ?? {}) as Record<string, string>;
    const hint = p.id_token_hint ? await verifyHint(p.id_token_hint) : undefined;
    if (p.id_token_hint && !hint) return sendPage(reply, config, 400, errorPage('invalid_request', 'The id_token_hint is not valid.'));
    let clientId = p.client_id;
    if (hint) {
      if (clientId && !hint.aud.includes(clientId)) return sendPage(reply, config, 400, errorPage('invalid_request', 'client_id does not match the id_token_hint.'));
      clientId ??= hint.aud[0];
    }
    const client = clientId ? await svc.clients.get(clientId) : undefined;
    if (clientId && !client) return sendPage(reply, config, 400, errorPage('invalid_client', 'Unknown client.'));
    const postLogout = p.post_logout_redirect_uri;
    if (postLogout && (!client || !client.postLogoutRedirectUris.includes(postLogout))) {
      return sendPage(reply, config, 400, errorPage('invalid_request', 'post_logout_redirect_uri is not registered for this client.'));
    }
    const done = () =>
      postLogout ? redirect303(reply, buildRedirect(postLogout, { state: p.state })) : sendPage(reply, config, 200, loggedOutPage());

    if (req.method === 'POST' && p.logout !== undefined) {
      // the confirmation form
      if (!isSameOrigin(req, config.issuer) || !csrfMatches(svc.rt.csrfSecret, 'logout', csrfBinding(req), p.csrf)) {
        return sendPage(reply, config, 403, errorPage('access_denied', 'The form has expired. Go back and try again.'));
      }
      if (p.logout === 'yes') await endHere(req, reply);
      return done();
    }

    const session = await currentSession(svc, req);
    if (hint && session && hint.current && hint.sid === session.sid && hint.sub === session.userId) {
      await endHere(req, reply);
      return done();
    }
    if (!session) {
      reply.clearCookie(svc.cookies.session, clearCookieOptions(svc.config));
      return done();
    }
    return sendPage(
      reply,
      config,
      200,
      logoutConfirmPage({
        action: `${config.issuer}/logout`,
        csrf: csrfToken(svc.rt.csrfSecret, 'logout', csrfBinding(req)),
        hidden: { client_id: clientId, post_logout_redirect_uri: postLogout, state: p.state },
      }),
      postLogout ? [postLogout] : [],
    );
  };
  app.get('/logout', { schema: { querystring: Params } }, handler);
  app.post('/logout', { schema: { body: Params } }, handler);
}

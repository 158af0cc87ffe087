// /authorize (GET and POST): validate, then either answer at once (SSO: a code; prompt=none: a
// code or an error) or hand over to the interaction pages with the request kept server-side.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ConsentRequired, LoginRequired } from '../../errors.js';
import { createInteraction } from '../../store/interactions.js';
import { RedirectError, UnsafeRequestError, validateAuthorizationRequest, type RawParams } from '../../protocol/authorization-request.js';
import { cookieOptions, sendPage } from '../browser.js';
import { errorPage } from '../views/pages.js';
import { currentSession, errorRedirect, issueCodeRedirect, needsConsent, redirect303, sessionSatisfies } from '../authorization-flow.js';
import type { Services } from '../services.js';

// Every parameter is a string, or an array when repeated (which the validator turns into an error).
const ParamsSchema = Type.Record(Type.String({ maxLength: 100 }), Type.Union([Type.String({ maxLength: 4096 }), Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 20 })]), {
  maxProperties: 40,
});

export function registerAuthorize(app: FastifyInstance, svc: Services): void {
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const params = (req.method === 'GET' ? req.query : req.body) as RawParams;
    try {
      const { request, client } = await validateAuthorizationRequest(params ?? {}, {
        pkceRequired: svc.config.pkceRequired,
        findClient: (id) => svc.clients.get(id),
      });
      const now = svc.now();
      const session = await currentSession(svc, req);
      const loggedIn = sessionSatisfies(request, session, now);
      if (request.prompt.includes('none')) {
        if (!loggedIn || !session) throw new RedirectError(new LoginRequired(), request.redirectUri, request.state);
        if (await needsConsent(svc, client, session.userId, request)) throw new RedirectError(new ConsentRequired(), request.redirectUri, request.state);
        return redirect303(reply, await issueCodeRedirect(svc, request, session));
      }
      if (loggedIn && session && !(await needsConsent(svc, client, session.userId, request))) {
        return redirect303(reply, await issueCodeRedirect(svc, request, session));
      }
      const id = await createInteraction(svc.rt.db, {
        request,
        at: now,
        ttl: svc.config.interactionTtl,
        ...(loggedIn && session ? { userId: session.userId, sessionSid: session.sid } : {}),
      });
      reply.setCookie(svc.cookies.interaction, id, cookieOptions(svc.config, svc.config.interactionTtl));
      return redirect303(reply, `${svc.config.issuer}/interaction/${id}`);
    } catch (err) {
      if (err instanceof UnsafeRequestError) return sendPage(reply, svc.config, 400, errorPage(err.error, err.description));
      if (err instanceof RedirectError) return redirect303(reply, errorRedirect(svc, err.redirectUri, err.oauth, err.state));
      throw err;
    }
  };
  const renderError = (err: { error: string; description: string; statusCode: number }, _req: FastifyRequest, reply: FastifyReply) =>
    sendPage(reply, svc.config, err.statusCode >= 500 ? 500 : 400, errorPage(err.error, err.statusCode >= 500 ? 'Something went wrong on our side.' : err.description));
  app.get('/authorize', { schema: { querystring: ParamsSchema }, config: { renderError } }, handler);
  app.post('/authorize', { schema: { body: ParamsSchema }, config: { renderError } }, handler);
}

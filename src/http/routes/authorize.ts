// /authorize (GET and POST): validate (opening a request object or a pushed request), then either
// answer at once (SSO: a code; prompt=none: a code or an error) or hand over to the interaction
// pages with the request sealed into the interaction URL: nothing is written here.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ConsentRequired, InvalidRequest, LoginRequired, type OAuthError } from '../../core/errors.js';
import { InteractionTooLarge, newInteraction, sealInteraction, takePushedRequest } from '../../store/interactions.js';
import { RedirectError, UnsafeRequestError, validateAuthorizationRequest, type RawParams, type ValidateOptions } from '../../protocol/authorization-request.js';
import { openRequestObject } from '../../protocol/request-object.js';
import { verifyIdTokenHint } from '../../tokens/id-token.js';
import { cookieOptions, sendPage } from '../browser.js';
import { errorPage } from '../views/pages.js';
import { codeResponse, currentSession, errorResponse, needsConsent, redirect303, sendAuthorizationResponse, sessionSatisfies } from '../authorization-flow.js';
import type { Services } from '../services.js';

// Every parameter is a string, or an array when repeated (which the validator turns into an error).
const ParamsSchema = Type.Record(Type.String({ maxLength: 100 }), Type.Union([Type.String({ maxLength: 16384 }), Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 20 })]), {
  maxProperties: 40,
});

/** How an authorization request is validated here and at the PAR endpoint. */
export function validationOptions(svc: Services): ValidateOptions {
  return {
    pkceRequired: svc.config.pkceRequired,
    findClient: (id) => svc.clients.get(id),
    openRequestObject: (jwt, client) => openRequestObject(jwt, client, { issuer: svc.config.issuer, now: svc.now(), leeway: svc.config.clockLeewaySeconds }),
    takePushedRequest: (uri, client) => takePushedRequest(svc.rt.db, uri, client.clientId, svc.now()),
  };
}

export function interactionUrl(svc: Services, id: string, sealed: string): string {
  return `${svc.config.issuer}/interaction/${id}?s=${sealed}`;
}

export function registerAuthorize(app: FastifyInstance, svc: Services): void {
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const params = (req.method === 'GET' ? req.query : req.body) as RawParams;
    try {
      const { request, client, idTokenHint } = await validateAuthorizationRequest(params ?? {}, validationOptions(svc));
      const fail = (e: OAuthError): never => {
        throw new RedirectError(e, request.redirectUri, request.state, request.responseMode);
      };
      const now = svc.now();
      let session = await currentSession(svc, req);
      let hintedUser: string | undefined;
      if (idTokenHint !== undefined) {
        // OIDC Core §3.1.2.1: an ID token we issued to this client (expired is fine for a hint)
        const hint = await verifyIdTokenHint(svc.rt, idTokenHint);
        if (!hint || !hint.aud.includes(client.clientId)) fail(new InvalidRequest('id_token_hint is not an ID token issued to this client'));
        hintedUser = hint!.sub;
        // the session of another user is not silently reused
        if (session && session.userId !== hintedUser) {
          if (request.prompt.includes('none')) fail(new LoginRequired('the logged-in user is not the one of id_token_hint'));
          session = undefined;
        }
      }
      const loggedIn = sessionSatisfies(request, session, now);
      if (request.prompt.includes('none')) {
        if (!loggedIn || !session) fail(new LoginRequired());
        if (await needsConsent(svc, client, session!.userId, request)) fail(new ConsentRequired());
        return sendAuthorizationResponse(reply, codeResponse(svc, request, session!));
      }
      if (loggedIn && session && !(await needsConsent(svc, client, session.userId, request))) {
        return sendAuthorizationResponse(reply, codeResponse(svc, request, session));
      }
      if (hintedUser && !request.loginHint) {
        const user = await svc.users.get(hintedUser);
        if (user) request.loginHint = user.email;
      }
      const interaction = newInteraction({
        request,
        at: now,
        ttl: svc.config.interactionTtl,
        ...(loggedIn && session ? { userId: session.userId, sessionSid: session.sid } : {}),
      });
      let sealed: string;
      try {
        sealed = sealInteraction(svc.rt.codeSecret, interaction);
      } catch (err) {
        if (err instanceof InteractionTooLarge) fail(new InvalidRequest(err.message));
        throw err;
      }
      reply.setCookie(svc.cookies.interaction, interaction.id, cookieOptions(svc.config, svc.config.interactionTtl));
      return redirect303(reply, interactionUrl(svc, interaction.id, sealed!));
    } catch (err) {
      if (err instanceof UnsafeRequestError) return sendPage(reply, svc.config, 400, errorPage(err.error, err.description));
      if (err instanceof RedirectError) return sendAuthorizationResponse(reply, errorResponse(svc, err.redirectUri, err.oauth, err.state, err.responseMode));
      throw err;
    }
  };
  const renderError = (err: { error: string; description: string; statusCode: number }, _req: FastifyRequest, reply: FastifyReply) =>
    sendPage(reply, svc.config, err.statusCode >= 500 ? 500 : 400, errorPage(err.error, err.statusCode >= 500 ? 'Something went wrong on our side.' : err.description));
  app.get('/authorize', { schema: { querystring: ParamsSchema }, config: { renderError } }, handler);
  app.post('/authorize', { schema: { body: ParamsSchema }, config: { renderError } }, handler);
}

// Pushed authorization requests (RFC 9126): the client authenticates as at /token and pushes the
// parameters of an authorization request; they are validated as /authorize would (a request
// object is opened here), and stored under the digest of a random request_uri, usable once, for
// 60 seconds, by any replica.
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { InvalidDpopProof, OAuthError } from '../../core/errors.js';
import { consumeProof, endpointProof } from '../dpop.js';
import { RedirectError, UnsafeRequestError, validateAuthorizationRequest, type RawParams } from '../../protocol/authorization-request.js';
import { storePushedRequest } from '../../store/interactions.js';
import { authenticateClient, singleParams, type FormParams } from '../client-authentication.js';
import { FormBody, OAuthErrorResponse } from '../schemas/form.js';
import { validationOptions } from './authorize.js';
import type { Services } from '../services.js';

export const PAR_TTL = 60;
// the client authentication parameters are not part of the authorization request
const CLIENT_AUTH_PARAMS = new Set(['client_secret', 'client_assertion', 'client_assertion_type']);
const ParResponse = Type.Object({ request_uri: Type.String(), expires_in: Type.Integer() });

export function registerPar(app: FastifyInstance, svc: Services): void {
  app.post('/par', { schema: { body: FormBody, response: { 201: ParResponse, '4xx': OAuthErrorResponse } } }, async (req, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    const body = (req.body ?? {}) as FormParams;
    if (svc.config.dpopNonce && req.headers.dpop !== undefined) reply.header('dpop-nonce', svc.dpopNonces.current());
    // RFC 9449 §10.1: a DPoP proof at the PAR endpoint binds the code to its key, as dpop_jkt would
    const proof = await endpointProof(svc, req);
    const client = await authenticateClient(svc, req, singleParams(Object.fromEntries(Object.entries(body).filter(([k]) => k !== 'resource'))));
    const params: RawParams = Object.fromEntries(Object.entries(body).filter(([k]) => !CLIENT_AUTH_PARAMS.has(k)));
    params.client_id = client.clientId;
    let validated;
    try {
      validated = await validateAuthorizationRequest(params, { ...validationOptions(svc), pushing: true });
    } catch (err) {
      // RFC 9126 §2.3: errors are answered here, as at the token endpoint, never redirected
      if (err instanceof UnsafeRequestError) throw new OAuthError(err.error, err.description);
      if (err instanceof RedirectError) throw err.oauth;
      throw err;
    }
    if (proof) {
      if (validated.request.dpopJkt && validated.request.dpopJkt !== proof.jkt) throw new InvalidDpopProof('dpop_jkt is not the thumbprint of the DPoP proof key');
      await consumeProof(svc, proof);
      validated.params.dpop_jkt = proof.jkt;
    }
    const requestUri = await storePushedRequest(svc.rt.db, { clientId: client.clientId, params: validated.params, at: svc.now(), ttl: PAR_TTL });
    return reply.code(201).send({ request_uri: requestUri, expires_in: PAR_TTL });
  });
}

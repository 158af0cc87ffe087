// /token (RFC 6749 §3.2): POST only, form-encoded; grant_type dispatched through the registry.
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { InvalidDpopProof, InvalidRequest, UnauthorizedClient, UnsupportedGrantType } from '../../core/errors.js';
import { consumeProof, endpointProof } from '../dpop.js';
import { grants } from '../../grants/registry.js';
import { authenticateClient, resourceParams, singleParams, type FormParams } from '../client-authentication.js';
import { FormBody, OAuthErrorResponse } from '../schemas/form.js';
import type { Services } from '../services.js';
import { metrics } from '../../core/metrics.js';

const TokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.Union([Type.Literal('Bearer'), Type.Literal('DPoP')]),
  expires_in: Type.Integer(),
  scope: Type.String(),
  refresh_token: Type.Optional(Type.String()),
  id_token: Type.Optional(Type.String()),
});

export function registerToken(app: FastifyInstance, svc: Services): void {
  app.post(
    '/token',
    { schema: { body: FormBody, response: { 200: TokenResponse, '4xx': OAuthErrorResponse } } },
    async (req, reply) => {
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
      const body = (req.body ?? {}) as FormParams;
      const params = singleParams(body);
      const grantType = params.grant_type;
      if (!grantType) throw new InvalidRequest('grant_type is missing');
      const grant = grants.get(grantType);
      if (!grant) throw new UnsupportedGrantType(`unsupported grant_type: ${grantType.slice(0, 64)}`);
      // RFC 9449 §8: every answer to a DPoP request names the current server nonce
      if (svc.config.dpopNonce && req.headers.dpop !== undefined) reply.header('dpop-nonce', svc.dpopNonces.current());
      // the proof first (a use_dpop_nonce answer costs the client no authentication attempt), recorded once the client is known
      const proof = await endpointProof(svc, req);
      const client = await authenticateClient(svc, req, params);
      if (!client.grantTypes.includes(grantType)) throw new UnauthorizedClient(`the client may not use ${grantType}`);
      // RFC 9449 §5.2 dpop_bound_access_tokens
      if (!proof && client.dpopBound) throw new InvalidDpopProof('this client must send a DPoP proof with its token requests');
      if (proof) await consumeProof(svc, proof);
      const response = await grant.handle({
        rt: svc.rt,
        client,
        params,
        resources: resourceParams(body),
        ip: req.ip,
        ...(proof ? { dpop: { jkt: proof.jkt } } : {}),
        userAgent: req.headers['user-agent'],
        audit: (e) => svc.audit(req, e),
        afterRevocation: () => svc.denylist.sync(),
      });
      metrics.tokensIssued.inc({ grant_type: grant.grantType });
      return response;
    },
  );
  app.get('/token', async (_req, reply) => {
    reply.code(405).header('allow', 'POST').header('cache-control', 'no-store');
    return { error: 'invalid_request', error_description: 'use POST' };
  });
}

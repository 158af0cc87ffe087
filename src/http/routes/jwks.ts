// The JWKS: public parts only (next, active and retired keys), precomputed body with an ETag.
import type { FastifyInstance } from 'fastify';
import type { Keystore } from '../../keys/keystore.js';

export function registerJwks(app: FastifyInstance, keystore: Keystore, maxAge: number): void {
  // every key change alters the ETag, so it versions the snapshot (src/http/static-responses.ts)
  app.get('/.well-known/jwks.json', { config: { staticVersion: () => keystore.jwksEtag } }, async (req, reply) => {
    const etag = keystore.jwksEtag;
    reply.header('cache-control', `public, max-age=${maxAge}`).header('etag', etag);
    const inm = req.headers['if-none-match'];
    if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}`)) {
      return reply.code(304).send();
    }
    reply.type('application/jwk-set+json');
    return reply.send(keystore.jwksBody);
  });
}

// Token Status List endpoints (draft-ietf-oauth-status-list §8, §9): each list as a signed JWT
// that resource servers and CDNs cache for its TTL, and the list of current list URIs.
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { NotFound, TemporarilyUnavailable } from '../../core/errors.js';
import { STATUS_LIST_MEDIA_TYPE, StatusListUnavailable, statusListUri, type StatusLists } from '../../tokens/status-list.js';

export function registerStatusLists(app: FastifyInstance, lists: StatusLists, issuer: string, ttl: number): void {
  const cacheControl = `public, max-age=${ttl}`;
  app.get('/statuslists/:id', { schema: { params: Type.Object({ id: Type.String({ maxLength: 100 }) }) } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!/^[0-9]{1,9}$/.test(id)) throw new NotFound('no such status list');
    let list;
    try {
      list = await lists.get(Number(id));
    } catch (err) {
      if (err instanceof StatusListUnavailable) throw new TemporarilyUnavailable(err.message);
      throw err;
    }
    if (!list) throw new NotFound('no such status list');
    reply.header('cache-control', cacheControl).header('etag', list.etag);
    const inm = req.headers['if-none-match'];
    if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === list.etag || t.trim() === `W/${list.etag}`)) return reply.code(304).send();
    return reply.type(STATUS_LIST_MEDIA_TYPE).send(list.jwt);
  });
  // the aggregation endpoint (§9): every list a live token may refer to
  app.get('/statuslists', async (_req, reply) => {
    reply.header('cache-control', cacheControl);
    return { status_lists: lists.listIds().map((id) => statusListUri(issuer, id)) };
  });
}

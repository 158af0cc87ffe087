// One rule for every parameter of every route: a string Postgres cannot store as text (a NUL, or
// a lone UTF-16 surrogate) is refused with invalid_request before any route sees it, so no handler
// reaches the database with it (a NUL made Postgres fail, and the request answer 500). Path, query,
// form and JSON body parameters all pass through this hook; the route's own error renderer answers
// (an error page at /authorize, JSON with WWW-Authenticate at /userinfo, …).
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { InvalidRequest } from '../../core/errors.js';
import { firstUnstorable } from '../../core/storable-text.js';

export const inputSanity = fp(
  async (app: FastifyInstance) => {
    // a callback hook, not an async one: no promise and microtask per request
    app.addHook('preValidation', (req, _reply, done) => {
      const bad = firstUnstorable(req.params) ?? firstUnstorable(req.query) ?? firstUnstorable(req.body);
      done(bad === undefined ? undefined : new InvalidRequest(`${bad.slice(0, 64)} contains a NUL or another character that cannot be stored`));
    });
  },
  { name: 'latchkey-input-sanity' },
);

// The stateless workloads, driven by autocannon: discovery, JWKS, client_credentials, /userinfo,
// /introspect. Each prepares its one request (and the token it carries), checks it once, then fires it.
import { cannon, type CannonRequest } from '../lib/cannon.js';
import { basicAuth, form, json, request } from '../lib/http.js';
import { assertAvailable, clientCredentials, exchangeCode, introspect, loginSession, type Target } from '../lib/oauth.js';
import type { Prepared, Workload } from './types.js';

export function tokenKind(token: string): string {
  const parts = token.split('.');
  if (parts.length !== 3) return 'opaque';
  try {
    const h = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as { alg?: string; typ?: string };
    return `JWT ${h.alg ?? '?'}${h.typ ? ` typ=${h.typ}` : ''}`;
  } catch {
    return 'opaque';
  }
}

async function probe(req: CannonRequest, what: string): Promise<string> {
  const res = await request(req.url, { method: req.method, headers: req.headers, body: req.body });
  assertAvailable(res, what);
  if (res.status !== 200) throw new Error(`${what}: probe answered ${res.status}: ${res.body.slice(0, 200)}`);
  return res.body;
}

/** Fire `req`; `check` runs after each round, since autocannon only sees status codes. */
function fire(req: CannonRequest, connections: number, notes?: string[], check?: () => Promise<void>): Prepared {
  return {
    notes,
    async run(ms) {
      const r = await cannon(req, connections, ms);
      if (check) {
        try {
          await check();
        } catch (err) {
          return { ...r, errors: r.errors + r.requests, firstError: `after the run: ${(err as Error).message}` };
        }
      }
      return r;
    },
  };
}

const CONNECTIONS = 50;

export const discovery: Workload = {
  name: 'discovery',
  connections: CONNECTIONS,
  // issue 14: against a bare node:http server writing the same bytes (the machine's ceiling)
  against: 'bare',
  targetRatio: 0.9,
  async prepare(t: Target) {
    const req = { url: t.endpoints.discovery };
    await probe(req, 'discovery');
    return fire(req, this.connections);
  },
};

export const jwks: Workload = {
  name: 'jwks',
  connections: CONNECTIONS,
  against: 'bare',
  targetRatio: 0.9,
  async prepare(t: Target) {
    const req = { url: t.endpoints.jwks };
    const body = JSON.parse(await probe(req, 'jwks')) as { keys: { kty: string; alg?: string }[] };
    return fire(req, this.connections, [`${body.keys.length} keys (${body.keys.map((k) => k.alg ?? k.kty).join(', ')})`]);
  },
};

export const clientCredentialsWorkload: Workload = {
  name: 'client_credentials',
  connections: CONNECTIONS,
  targetRatio: 2.5,
  targetP99Ms: 50,
  async prepare(t: Target) {
    const req: CannonRequest = {
      url: t.endpoints.token,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(t.clients.cc.id, t.clients.cc.secret) },
      body: form({ grant_type: 'client_credentials', scope: t.scopes.cc, resource: t.resource }),
    };
    const tok = await clientCredentials(t, t.resource);
    return fire(req, this.connections, [`access token: ${tokenKind(tok.access_token)}`]);
  },
};

export const userinfo: Workload = {
  name: 'userinfo',
  connections: CONNECTIONS,
  targetRatio: 3,
  async prepare(t: Target) {
    const { first } = await loginSession(t, t.clients.ui, t.scopes.ui);
    const tok = await exchangeCode(t, t.clients.ui, first.code, first.verifier);
    const req: CannonRequest = { url: t.endpoints.userinfo, headers: { authorization: `Bearer ${tok.access_token}` } };
    const claims = JSON.parse(await probe(req, 'userinfo')) as Record<string, unknown>;
    if (!claims.sub) throw new Error('userinfo: no sub in the answer');
    return fire(req, this.connections, [`access token: ${tokenKind(tok.access_token)}`, `claims: ${Object.keys(claims).join(' ')}`]);
  },
};

export const introspection: Workload = {
  name: 'introspect',
  connections: CONNECTIONS,
  targetRatio: 3,
  async prepare(t: Target) {
    const tok = await clientCredentials(t, t.introspectResource);
    const answer = await introspect(t, tok.access_token);
    if (answer.active !== true) throw new Error(`introspect: a fresh token is not active: ${JSON.stringify(answer)}`);
    const req: CannonRequest = {
      url: t.endpoints.introspection,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(t.clients.cc.id, t.clients.cc.secret), accept: 'application/json' },
      body: form({ token: tok.access_token }),
    };
    // a 200 {"active":false} would count as a success: check the token is still active after each run
    const stillActive = async () => {
      const a = json(await request(req.url, { method: 'POST', headers: req.headers, body: req.body }));
      if (a.active !== true) throw new Error(`the token is no longer active: ${JSON.stringify(a)}`);
    };
    return fire(req, this.connections, [`introspected token: client_credentials, ${tokenKind(tok.access_token)}`], stillActive);
  },
};

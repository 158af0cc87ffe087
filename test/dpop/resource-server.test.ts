// Issue 15: a resource server built with @latchkey/verify, offline (JWKS + status lists), in front of
// DPoP-bound tokens the real server issued to openid-client: accepted with a proof, refused as a
// bearer token, with another key's proof, with a replayed proof; unbound tokens still work as
// Bearer. Both databases.
import t from 'tap';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import * as oidc from 'openid-client';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, RunningClock } from '../helpers/runtime.js';
import { createClient } from '../helpers/fixtures.js';
import { latchkeyAuth } from '../../packages/verify/src/index.js';

t.teardown(dropCreatedDatabases);

const API = 'https://orders.example.com';

for (const backend of backends()) {
  t.test(`@latchkey/verify in front of DPoP-bound tokens (${backend.name})`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true, clock: new RunningClock(Date.now()) });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const svc = await createClient(env.rt, ['--name', 'Service', '--grant-types', 'client_credentials', '--scopes', 'orders:read', '--audiences', API]);
    const config = await oidc.discovery(new URL(issuer), svc.clientId, svc.clientSecret!, undefined, { execute: [oidc.allowInsecureRequests] });

    const rs = Fastify();
    await rs.register(latchkeyAuth, { issuer, audience: API, algorithms: ['ES256'], publicUrl: API });
    rs.get('/orders', async (req) => ({ sub: req.auth!.sub, bound: Boolean(req.auth!.cnf) }));
    await rs.listen({ port: 0, host: '127.0.0.1' });
    t.teardown(() => rs.close());
    const rsUrl = `http://127.0.0.1:${(rs.server.address() as AddressInfo).port}`;
    // openid-client addresses the RS by its public URL (the proof's htu); the request goes to the local port
    let captured: { authorization: string; dpop: string } | undefined;
    config[oidc.customFetch] = (url, init) => {
      if (!url.startsWith(API)) return fetch(url, init);
      const h = new Headers(init.headers);
      captured = { authorization: h.get('authorization')!, dpop: h.get('dpop') ?? '' };
      return fetch(url.replace(API, rsUrl), init as RequestInit);
    };
    const call = async (token: string, DPoP?: oidc.DPoPHandle) => {
      let res: Response;
      try {
        res = await oidc.fetchProtectedResource(config, token, new URL(`${API}/orders`), 'GET', undefined, undefined, DPoP ? { DPoP } : {});
      } catch (err) {
        // openid-client turns a 401 with a challenge into an error that keeps the response
        const response = (err as { response?: Response }).response;
        if (!response) throw err;
        res = response;
      }
      return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.text() };
    };

    const DPoP = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const bound = await oidc.clientCredentialsGrant(config, { scope: 'orders:read', resource: API }, { DPoP });
    t.equal(bound.token_type.toLowerCase(), 'dpop');

    const ok = await call(bound.access_token, DPoP);
    t.equal(ok.status, 200, 'accepted with a proof by its key');
    t.same(JSON.parse(ok.body), { sub: svc.clientId, bound: true });

    const asBearer = await call(bound.access_token);
    t.equal(asBearer.status, 401, 'refused as a bearer token');
    t.match(asBearer.challenge, /DPoP error="invalid_token"/);

    const other = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const wrongKey = await call(bound.access_token, other);
    t.equal(wrongKey.status, 401, "refused with another key's proof");
    t.match(wrongKey.challenge, /DPoP error="invalid_dpop_proof"/);

    // the same proof twice: the last one openid-client sent, sent again by hand
    t.equal((await call(bound.access_token, DPoP)).status, 200);
    const replay = await fetch(`${rsUrl}/orders`, { headers: captured! });
    t.equal(replay.status, 401, 'a replayed proof is refused');
    t.match(replay.headers.get('www-authenticate'), /invalid_dpop_proof/);

    const plain = await oidc.clientCredentialsGrant(config, { scope: 'orders:read', resource: API });
    t.equal(plain.token_type.toLowerCase(), 'bearer');
    t.equal((await call(plain.access_token)).status, 200, 'an unbound token works as a bearer token');
  });
}

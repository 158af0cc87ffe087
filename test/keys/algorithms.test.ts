// Every supported algorithm (ES256, EdDSA, RS256, PS256): tokens we sign verify with a standard
// library (jose's createRemoteJWKSet + jwtVerify against our JWKS over HTTP), and the algorithms we
// can sign ID tokens with are exactly the enabled ones with an active key.
import t from 'tap';
import { createRemoteJWKSet, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import type { SigningAlg } from '../../src/core/config.js';
import { signAccessToken } from '../../src/tokens/access-token.js';
import { idTokenSigningAlgs } from '../../src/keys/keystore.js';

t.teardown(dropCreatedDatabases);

const expectedShape: Record<SigningAlg, Record<string, unknown>> = {
  ES256: { kty: 'EC', crv: 'P-256' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  RS256: { kty: 'RSA', e: 'AQAB' },
  PS256: { kty: 'RSA', e: 'AQAB' },
};

for (const backend of backends()) {
  for (const defaultAlg of ['ES256', 'EdDSA', 'PS256'] as const) {
    t.test(`SIGNING_ALG=${defaultAlg} (and RS256) on ${backend.name}`, async (t) => {
      const env = await createTestEnv(await backend.create(), { listen: true, env: { SIGNING_ALG: defaultAlg } });
      t.teardown(() => env.close());
      const { rt, config } = env;
      const jwksUri = new URL(`${config.issuer}/.well-known/jwks.json`);
      const remote = createRemoteJWKSet(jwksUri);

      t.same(idTokenSigningAlgs(config, rt.keystore), defaultAlg === 'PS256' ? ['RS256', 'PS256'] : [defaultAlg, 'RS256'], 'exactly the enabled algorithms with an active key');
      t.same(rt.keystore.activeAlgs().sort(), [defaultAlg, 'RS256'].sort());

      const jwks = (await (await fetch(jwksUri)).json()) as JSONWebKeySet;
      for (const alg of [defaultAlg, 'RS256'] as SigningAlg[]) {
        const published = jwks.keys.filter((k) => k.alg === alg);
        t.equal(published.length, 2, `${alg}: active and next published`);
        for (const k of published) {
          t.match(k, { ...expectedShape[alg], use: 'sig' });
          if (k.kty === 'RSA') t.equal(Buffer.from(k.n!, 'base64url').length * 8, 2048, 'RSA 2048');
          for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) t.notOk(priv in k, `no private member ${priv}`);
        }
      }

      // the access token, signed with the default algorithm
      const at = await signAccessToken(rt, { sub: 'u1', clientId: 'c1', scope: ['openid'], aud: ['https://api.example'], statusIdx: 0 });
      const v = await jwtVerify(at.token, remote, { issuer: config.issuer, audience: 'https://api.example', algorithms: [defaultAlg], typ: 'at+jwt' });
      t.equal(v.protectedHeader.alg, defaultAlg);
      t.equal(v.protectedHeader.kid, at.kid);

      // an ID-token-shaped JWT with each enabled algorithm's signing key
      for (const alg of [defaultAlg, 'RS256'] as SigningAlg[]) {
        const key = rt.keystore.signingKey(alg);
        const jwt = await new SignJWT({ nonce: 'n' }).setProtectedHeader({ alg, kid: key.kid }).setIssuer(config.issuer).setAudience('c1').setSubject('u1').setIssuedAt().setExpirationTime('5m').sign(key.privateKey);
        const r = await jwtVerify(jwt, remote, { issuer: config.issuer, audience: 'c1', algorithms: [alg] });
        t.equal(r.protectedHeader.kid, key.kid, `${alg} verifies with jose against our JWKS`);
        // pinned algorithms: the same token is refused when another algorithm is expected
        await t.rejects(jwtVerify(jwt, remote, { issuer: config.issuer, audience: 'c1', algorithms: [alg === 'RS256' ? 'PS256' : 'RS256'] }));
      }
    });
  }
}

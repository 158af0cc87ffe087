// Issue 15, bad input: every malformed DPoP proof is invalid_dpop_proof (400 at /token, 401 with a
// DPoP challenge at /userinfo and the admin API) and changes no state; nonces (use_dpop_nonce,
// rotation, any replica), replay across replicas, dpop_jkt syntax, DPOP_NONCE=false. Proofs are
// built by hand with jose so that each one is wrong in exactly one way.
import t from 'tap';
import crypto from 'node:crypto';
import { SignJWT, UnsecuredJWT, calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { startReplicas } from '../helpers/replicas.js';
import { createClient, type TestClient } from '../helpers/fixtures.js';
import { basic } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const API = 'https://api.example.com';
type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

interface ProofInput {
  keys: KeyPair;
  alg?: string;
  htm?: string;
  htu: string;
  iat: number;
  jti?: string | null;
  nonce?: string;
  ath?: string;
  typ?: string;
  jwk?: JWK;
}

async function proof(p: ProofInput): Promise<string> {
  const claims: Record<string, unknown> = { htm: p.htm ?? 'POST', htu: p.htu, iat: p.iat };
  if (p.jti !== null) claims.jti = p.jti ?? crypto.randomUUID();
  if (p.nonce !== undefined) claims.nonce = p.nonce;
  if (p.ath !== undefined) claims.ath = p.ath;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: p.alg ?? 'ES256', typ: p.typ ?? 'dpop+jwt', jwk: p.jwk ?? (await exportJWK(p.keys.publicKey)) })
    .sign(p.keys.privateKey);
}

const ath = (token: string) => crypto.createHash('sha256').update(token).digest('base64url');

async function call(url: string, init: { method?: string; dpop?: string | string[]; authorization?: string; form?: Record<string, string> }) {
  const headers = new Headers();
  if (init.form) headers.set('content-type', 'application/x-www-form-urlencoded');
  if (init.authorization) headers.set('authorization', init.authorization);
  for (const d of init.dpop === undefined ? [] : Array.isArray(init.dpop) ? init.dpop : [init.dpop]) headers.append('dpop', d);
  const res = await fetch(url, { method: init.method ?? (init.form ? 'POST' : 'GET'), headers, body: init.form ? new URLSearchParams(init.form) : undefined });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body, headers: res.headers };
}

async function proofCount(env: TestEnv): Promise<number> {
  return Number((await env.rt.db.selectFrom('dpop_proofs').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
}

for (const backend of backends()) {
  t.test(`DPoP proofs on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const now = () => Math.floor(env.clock.now() / 1000);
    const api = await createClient(env.rt, ['--name', 'API', '--grant-types', 'client_credentials', '--scopes', 'orders:read', '--audiences', API, '--resource-server', API]);
    const admin = await createClient(env.rt, ['--name', 'Admin', '--admin']);
    const keys = await generateKeyPair('ES256', { extractable: true });
    const jkt = await calculateJwkThumbprint(await exportJWK(keys.publicKey), 'sha256');
    const tokenUrl = `${issuer}/token`;

    const ccForm = { grant_type: 'client_credentials', scope: 'orders:read' };
    const cc = (c: TestClient, dpop?: string | string[], form: Record<string, string> = ccForm) => call(tokenUrl, { form, authorization: basic(c.clientId, c.clientSecret!), dpop });

    // the current server nonce, as a client learns it: from the first answer
    const first = await cc(api, await proof({ keys, htu: tokenUrl, iat: now() }));
    t.equal(first.status, 400);
    t.equal(first.body.error, 'use_dpop_nonce');
    const nonce = first.headers.get('dpop-nonce')!;
    t.match(nonce, /^[A-Za-z0-9_-]{27}$/);
    let latest = nonce;
    const good = (extra: Partial<ProofInput> = {}) => proof({ keys, htu: tokenUrl, iat: now(), nonce: latest, ...extra });

    t.test('a good proof: a bound token, DPoP-Nonce on the answer', async (t) => {
      const r = await cc(api, await good());
      t.equal(r.status, 200);
      t.equal(r.body.token_type, 'DPoP');
      t.same(decodeJwt(r.body.access_token as string).cnf, { jkt });
      t.equal(r.headers.get('dpop-nonce'), nonce, 'the answer names the current nonce');
      const q = await cc(api, await good({ htu: `${tokenUrl}?x=1#frag` }));
      t.equal(q.status, 200, 'htu is compared without query and fragment');
    });

    t.test('every malformed proof at /token: 400 invalid_dpop_proof, nothing recorded', async (t) => {
      const hs = new TextEncoder().encode('a shared secret of thirty-two bytes!!');
      const privateJwk = await exportJWK(keys.privateKey);
      const rsa = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
      const cases: [string, () => Promise<string | string[]>][] = [
        ['wrong typ', () => good({ typ: 'JWT' })],
        ['typ at+jwt', () => good({ typ: 'at+jwt' })],
        ['symmetric alg (HS256)', () => new SignJWT({ htm: 'POST', htu: tokenUrl, iat: now(), jti: 'x', nonce }).setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: Buffer.from(hs).toString('base64url') } as never }).sign(hs)],
        ['alg none', async () => new UnsecuredJWT({ htm: 'POST', htu: tokenUrl, iat: now(), jti: 'y', nonce }).encode().replace(/^[^.]+/, Buffer.from(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: await exportJWK(keys.publicKey) })).toString('base64url'))],
        ['private key in jwk', () => good({ jwk: privateJwk })],
        ['alg not the key type (RS256 header, EC signature)', async () => {
          const [h, p, sig] = (await good()).split('.');
          const header = { ...JSON.parse(Buffer.from(h!, 'base64url').toString()), alg: 'RS256' };
          return `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${p}.${sig}`;
        }],
        ['jwk of another key than the signature', async () => good({ jwk: await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey) })],
        ['no jwk', async () => new SignJWT({ htm: 'POST', htu: tokenUrl, iat: now(), jti: 'z', nonce }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt' }).sign(keys.privateKey)],
        ['RSA key of 1024 bits', async () => {
          // jose will not sign with a key this small: the proof is put together by hand
          const small = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
          const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
          const input = `${enc({ alg: 'RS256', typ: 'dpop+jwt', jwk: small.publicKey.export({ format: 'jwk' }) })}.${enc({ htm: 'POST', htu: tokenUrl, iat: now(), jti: crypto.randomUUID(), nonce: latest })}`;
          return `${input}.${crypto.sign('sha256', Buffer.from(input), small.privateKey).toString('base64url')}`;
        }],
        ['RSA key of 2048 bits: accepted (the control of the case above)', async () => 'control'],
        ['wrong htm', () => good({ htm: 'GET' })],
        ['wrong htu (another endpoint)', () => good({ htu: `${issuer}/userinfo` })],
        ['wrong htu (another origin)', () => good({ htu: 'https://evil.example/token' })],
        ['htu not a URL', () => good({ htu: 'token' })],
        ['stale iat', () => good({ iat: now() - 200 })],
        ['future iat', () => good({ iat: now() + 120 })],
        ['no jti', () => good({ jti: null })],
        ['jti too long', () => good({ jti: 'j'.repeat(300) })],
        ['not a JWT', async () => 'not-a-jwt'],
        ['two DPoP headers', async () => [await good(), await good()]],
        ['a signature that does not verify', async () => (await good()).replace(/.{4}$/, 'AAAA')],
      ];
      for (const [name, make] of cases) {
        const before = await proofCount(env);
        const made = await make();
        if (made === 'control') {
          const r = await cc(api, await proof({ keys: rsa, alg: 'RS256', htu: tokenUrl, iat: now(), nonce: latest }));
          t.equal(r.status, 200, name);
          continue;
        }
        const r = await cc(api, made);
        t.equal(r.status, 400, `${name}: 400`);
        t.equal(r.body.error, 'invalid_dpop_proof', `${name}: invalid_dpop_proof`);
        t.notOk(r.body.access_token, `${name}: no token`);
        t.equal(await proofCount(env), before, `${name}: nothing recorded`);
      }
    });

    t.test('replay: a proof is accepted once', async (t) => {
      const p = await good();
      t.equal((await cc(api, p)).status, 200);
      const again = await cc(api, p);
      t.equal(again.status, 400);
      t.equal(again.body.error, 'invalid_dpop_proof');
      t.match(again.body.error_description, /already used/);
    });

    t.test('nonces: missing or unknown → use_dpop_nonce; rotated ones are accepted for a while, then not', async (t) => {
      for (const bad of [undefined, 'x'.repeat(27), `${nonce.slice(0, 26)}${nonce[26] === 'A' ? 'B' : 'A'}`]) {
        const before = await proofCount(env);
        const r = await cc(api, await proof({ keys, htu: tokenUrl, iat: now(), ...(bad ? { nonce: bad } : {}) }));
        t.equal(r.status, 400);
        t.equal(r.body.error, 'use_dpop_nonce');
        t.equal(r.headers.get('dpop-nonce'), nonce);
        t.equal(await proofCount(env), before, 'nothing recorded');
      }
      env.clock.advance(env.config.dpopNonceSeconds);
      const r1 = await cc(api, await good());
      t.equal(r1.status, 200, 'the previous window is still accepted');
      const next = r1.headers.get('dpop-nonce')!;
      t.not(next, nonce, 'a new nonce is handed out');
      env.clock.advance(2 * env.config.dpopNonceSeconds);
      const r2 = await cc(api, await good());
      t.equal(r2.body.error, 'use_dpop_nonce', 'three windows later it is not');
      latest = r2.headers.get('dpop-nonce')!;
      t.equal((await cc(api, await good())).status, 200);
    });

    t.test('dpop_jkt at /authorize must be a thumbprint', async (t) => {
      const web = await createClient(env.rt, ['--name', 'Web', '--redirect-uri', 'http://127.0.0.1:9/cb', '--first-party']);
      const url = new URL(`${issuer}/authorize`);
      for (const [k, v] of Object.entries({ client_id: web.clientId, redirect_uri: 'http://127.0.0.1:9/cb', response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 's', dpop_jkt: 'not a thumbprint' })) url.searchParams.set(k, v);
      const res = await fetch(url, { redirect: 'manual' });
      t.equal(res.status, 303);
      const loc = new URL(res.headers.get('location')!);
      t.equal(loc.searchParams.get('error'), 'invalid_request');
    });

    t.test('resource endpoints: the DPoP scheme with a proof carrying ath', async (t) => {
      const tok = await call(tokenUrl, { form: { grant_type: 'client_credentials', scope: 'latchkey:admin', resource: `${issuer}/admin` }, authorization: basic(admin.clientId, admin.clientSecret!), dpop: await good() });
      t.equal(tok.status, 200);
      const AT = tok.body.access_token as string;
      const keysUrl = `${issuer}/admin/keys`;
      const rp = (extra: Partial<ProofInput> = {}) => proof({ keys, htm: 'GET', htu: keysUrl, iat: now(), ath: ath(AT), ...extra });
      const ok = await call(keysUrl, { authorization: `DPoP ${AT}`, dpop: await rp() });
      t.equal(ok.status, 200, 'the admin API accepts a bound token with its proof');
      t.ok(Array.isArray(ok.body.keys));
      const lower = await call(keysUrl, { authorization: `dpop ${AT}`, dpop: await rp() });
      t.equal(lower.status, 200, 'the scheme name is case-insensitive');

      const other = await generateKeyPair('ES256', { extractable: true });
      const cases: [string, () => Promise<{ authorization: string; dpop?: string | string[] }>][] = [
        ['no proof', async () => ({ authorization: `DPoP ${AT}` })],
        ['missing ath', async () => ({ authorization: `DPoP ${AT}`, dpop: await proof({ keys, htm: 'GET', htu: keysUrl, iat: now() }) })],
        ['wrong ath', async () => ({ authorization: `DPoP ${AT}`, dpop: await rp({ ath: ath(`${AT}x`) }) })],
        ['thumbprint mismatch (a proof by another key)', async () => ({ authorization: `DPoP ${AT}`, dpop: await proof({ keys: other, htm: 'GET', htu: keysUrl, iat: now(), ath: ath(AT) }) })],
        ['wrong htm', async () => ({ authorization: `DPoP ${AT}`, dpop: await rp({ htm: 'POST' }) })],
        ['wrong htu', async () => ({ authorization: `DPoP ${AT}`, dpop: await rp({ htu: `${issuer}/admin/clients` }) })],
        ['stale iat', async () => ({ authorization: `DPoP ${AT}`, dpop: await rp({ iat: now() - 300 }) })],
        ['wrong typ', async () => ({ authorization: `DPoP ${AT}`, dpop: await rp({ typ: 'jwt' }) })],
        ['two proofs', async () => ({ authorization: `DPoP ${AT}`, dpop: [await rp(), await rp()] })],
      ];
      for (const [name, make] of cases) {
        const before = await proofCount(env);
        const r = await call(keysUrl, await make());
        t.equal(r.status, 401, `${name}: 401`);
        t.equal(r.body.error, 'invalid_dpop_proof', `${name}: invalid_dpop_proof`);
        t.match(r.headers.get('www-authenticate'), /^DPoP error="invalid_dpop_proof".*algs="ES256 EdDSA Ed25519 RS256 PS256"/, `${name}: a DPoP challenge`);
        t.equal(await proofCount(env), before, `${name}: nothing recorded`);
      }
      const replayed = await rp();
      t.equal((await call(keysUrl, { authorization: `DPoP ${AT}`, dpop: replayed })).status, 200);
      const r = await call(keysUrl, { authorization: `DPoP ${AT}`, dpop: replayed });
      t.equal(r.status, 401, 'a replayed proof at a resource endpoint');
      t.equal(r.body.error, 'invalid_dpop_proof');

      const bearer = await call(keysUrl, { authorization: `Bearer ${AT}` });
      t.equal(bearer.status, 401, 'a bound token sent as a bearer token');
      t.equal(bearer.body.error, 'invalid_token');
      t.match(bearer.headers.get('www-authenticate'), /^DPoP error="invalid_token"/);

      const none = await call(keysUrl, {});
      t.equal(none.status, 401);
      t.match(none.headers.get('www-authenticate'), /Bearer realm="latchkey".*DPoP algs=/, 'no token: both schemes offered');

      // /userinfo speaks the same: a bound user token there is covered end to end (openid-client.test.ts)
      const ui = await call(`${issuer}/userinfo`, { authorization: `DPoP ${AT}`, dpop: await proof({ keys, htm: 'GET', htu: `${issuer}/userinfo`, iat: now(), ath: ath(AT) }) });
      t.equal(ui.status, 401, 'an admin token is not for /userinfo, whatever the scheme');
      t.match(ui.headers.get('www-authenticate'), /^DPoP error="invalid_token"/);
    });

    t.test('--dpop-bound clients must send a proof; clients update switches it', async (t) => {
      const { cli } = await import('../helpers/fixtures.js');
      await cli(env.rt, ['clients', 'update', api.clientId, '--dpop-bound']);
      const shown = await cli(env.rt, ['clients', 'update', api.clientId, '--name', 'API']);
      t.equal(shown.dpop_bound_access_tokens, true);
      // the client cache hears of the change through NOTIFY
      let r = await cc(api);
      for (let i = 0; i < 50 && r.status === 200; i++) {
        await new Promise((res) => setTimeout(res, 50));
        r = await cc(api);
      }
      t.equal(r.status, 400);
      t.equal(r.body.error, 'invalid_dpop_proof');
      t.equal((await cc(api, await good())).status, 200);
      await cli(env.rt, ['clients', 'update', api.clientId, '--no-dpop-bound']);
    });
  });

  t.test(`a proof replayed at another replica is refused (${backend.name})`, async (t) => {
    const { a, envs, urls } = await startReplicas(t, backend);
    const api = await createClient(a.rt, ['--name', 'API', '--grant-types', 'client_credentials', '--scopes', 'orders:read', '--audiences', API]);
    const keys = await generateKeyPair('ES256', { extractable: true });
    const htu = `${a.config.issuer}/token`;
    const now = Math.floor(a.clock.now() / 1000);
    for (const e of envs) e.clock.set(a.clock.now());
    const cc = (url: string, dpop: string) => call(`${url}/token`, { form: { grant_type: 'client_credentials' }, authorization: basic(api.clientId, api.clientSecret!), dpop });
    const first = await cc(urls[0]!, await proof({ keys, htu, iat: now }));
    const nonce = first.headers.get('dpop-nonce')!;
    const p = await proof({ keys, htu, iat: now, nonce });
    t.equal((await cc(urls[0]!, p)).status, 200);
    const last = urls[urls.length - 1]!;
    const replay = await cc(last, p);
    t.equal(replay.status, 400, urls.length > 1 ? 'the other replica refuses it' : 'refused (PGlite: one replica)');
    t.equal(replay.body.error, 'invalid_dpop_proof');
    // the nonce handed out by one replica is good at the other (no shared write)
    t.equal((await cc(last, await proof({ keys, htu, iat: now, nonce }))).status, 200, 'a nonce of replica A is accepted by the last replica');
  });

  t.test(`DPOP_NONCE=false: proofs need no nonce (${backend.name})`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true, env: { DPOP_NONCE: 'false' } });
    t.teardown(() => env.close());
    const api = await createClient(env.rt, ['--name', 'API', '--grant-types', 'client_credentials', '--scopes', 'orders:read', '--audiences', API]);
    const keys = await generateKeyPair('ES256', { extractable: true });
    const r = await call(`${env.config.issuer}/token`, { form: { grant_type: 'client_credentials' }, authorization: basic(api.clientId, api.clientSecret!), dpop: await proof({ keys, htu: `${env.config.issuer}/token`, iat: Math.floor(env.clock.now() / 1000) }) });
    t.equal(r.status, 200);
    t.equal(r.body.token_type, 'DPoP');
    t.equal(r.headers.get('dpop-nonce'), null);
  });
}

// DPoP-bound access tokens at the resource server (RFC 9449 §4.3, §7): the fake issuer mints tokens
// with `cnf.jkt`; each check of the proof is broken in turn, through verify() and then through the
// Fastify plugin and the Express-style middleware over real HTTP.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import t, { type Test } from 'tap';
import { createVerifier, expressVerifier, fastifyVerifier, InvalidDpopProof, InvalidToken, latchkeyAuth, VerifyError, type MiddlewareRequest, type ReplayStore, type VerifierOptions, type VerifyOptions } from '../../packages/verify/src/index.js';
import type { LogEntry } from '../../packages/verify/src/status-list.js';
import { startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.js';

const AUD = 'https://api.example.com';
const URL_ME = 'https://api.example.com/me';
const ALGS = 'algs="ES256 EdDSA Ed25519 RS256 PS256"';

interface ProofKey {
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
  privateJwk: JWK;
  jkt: string;
}

async function proofKey(alg = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { alg, privateKey, jwk, privateJwk: await exportJWK(privateKey), jkt: await calculateJwkThumbprint(jwk) };
}

const ath = (token: string) => base64url.encode(createHash('sha256').update(token).digest());
let jtiCounter = 0;

interface ProofOptions {
  token?: string;
  htm?: string;
  htu?: string;
  /** seconds relative to the issuer's clock */
  iatOffset?: number;
  jti?: string;
  /** replace claims (undefined deletes one) */
  claims?: Record<string, unknown>;
  header?: Record<string, unknown>;
}

/** A DPoP proof signed by `key` at the issuer's clock. */
async function proof(issuer: FakeIssuer, key: ProofKey, o: ProofOptions = {}): Promise<string> {
  const payload: Record<string, unknown> = {
    jti: o.jti ?? `proof-${++jtiCounter}-${Math.random().toString(36).slice(2)}`,
    htm: o.htm ?? 'GET',
    htu: o.htu ?? URL_ME,
    iat: Math.floor(issuer.now() / 1000) + (o.iatOffset ?? 0),
    ...(o.token !== undefined ? { ath: ath(o.token) } : {}),
  };
  for (const [k, v] of Object.entries(o.claims ?? {})) {
    if (v === undefined) delete payload[k];
    else payload[k] = v;
  }
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.jwk, ...o.header } as never).sign(key.privateKey);
}

/** An unsecured JWS (`alg: none`) as an attacker would write it: there is no jose API to make one with a jwk header. */
function unsignedProof(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const part = (v: unknown) => base64url.encode(JSON.stringify(v));
  return `${part(header)}.${part(payload)}.`;
}

async function setup(t: Test, options: Partial<VerifierOptions> = {}) {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const logs: LogEntry[] = [];
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: (e) => logs.push(e), ...options });
  const key = await proofKey();
  const token = await issuer.signAccessToken({ cnf: { jkt: key.jkt } });
  return { issuer, verifier, logs, key, token };
}

const dpop = (proofJwt: string | string[] | undefined, method = 'GET', url = URL_ME): VerifyOptions => ({ dpop: { proof: proofJwt, method, url } });

/** The VerifyError a promise rejects with (fails the test if it resolves). */
async function refusal(t: Test, p: Promise<unknown>, reason: string, what: string): Promise<VerifyError | undefined> {
  try {
    await p;
    t.fail(`${what}: accepted`);
    return undefined;
  } catch (err) {
    t.ok(err instanceof VerifyError, `${what}: a VerifyError (${(err as Error).message})`);
    const e = err as VerifyError;
    t.equal(e.reason, reason, `${what}: reason ${reason}`);
    return e;
  }
}

/** Refused as an invalid DPoP proof: 401, `invalid_dpop_proof`, the DPoP challenge with the algorithms. */
async function badProof(t: Test, p: Promise<unknown>, reason: string, what: string, algs = ALGS) {
  const e = await refusal(t, p, reason, what);
  if (!e) return;
  t.ok(e instanceof InvalidDpopProof, `${what}: InvalidDpopProof`);
  t.equal(e.error, 'invalid_dpop_proof', `${what}: invalid_dpop_proof`);
  t.equal(e.status, 401, `${what}: 401`);
  t.equal(e.wwwAuthenticate, `DPoP error="invalid_dpop_proof", error_description="${e.description}", ${algs}`, `${what}: the DPoP challenge`);
  t.same(e.toJSON(), { error: 'invalid_dpop_proof', error_description: e.description });
}

t.test('a bound token with a good proof is accepted: ES256, EdDSA, RS256 and PS256 proof keys', async (t) => {
  const { issuer, verifier } = await setup(t);
  for (const alg of ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256']) {
    const key = await proofKey(alg);
    const token = await issuer.signAccessToken({ cnf: { jkt: key.jkt } });
    const claims = await verifier.verify(token, dpop(await proof(issuer, key, { token })));
    t.equal(claims.sub, 'user-1', `${alg}: accepted`);
    t.same(claims.cnf, { jkt: key.jkt }, `${alg}: cnf.jkt is in the claims`);
  }
  t.same(verifier.dpopAlgorithms, ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'], 'the verifier says which algorithms it accepts');
});

t.test('the proof header: typ, alg, jwk', async (t) => {
  const { issuer, verifier, key, token } = await setup(t);
  await badProof(t, verifier.verify(token, dpop(await proof(issuer, key, { token, header: { typ: 'JWT' } }))), 'dpop_type', 'typ JWT');
  const noTyp = unsignedProof({ alg: 'ES256', jwk: key.jwk }, {});
  await badProof(t, verifier.verify(token, dpop(noTyp)), 'dpop_type', 'no typ');

  // HS256 with a symmetric key in the header
  const secret = new Uint8Array(32).fill(7);
  const hs = await new SignJWT({ jti: 'hs', htm: 'GET', htu: URL_ME, iat: Math.floor(issuer.now() / 1000), ath: ath(token) })
    .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: base64url.encode(secret) } } as never)
    .sign(secret);
  await badProof(t, verifier.verify(token, dpop(hs)), 'dpop_algorithm', 'HS256 (symmetric)');
  const none = unsignedProof({ alg: 'none', typ: 'dpop+jwt', jwk: key.jwk }, { jti: 'n', htm: 'GET', htu: URL_ME, iat: Math.floor(issuer.now() / 1000), ath: ath(token) });
  await badProof(t, verifier.verify(token, dpop(none)), 'dpop_algorithm', 'alg none');
  await badProof(t, verifier.verify(token, dpop(await proof(issuer, key, { token, header: { jwk: key.privateJwk } }))), 'dpop_key', 'a private key in jwk');
  await badProof(t, verifier.verify(token, dpop(await proof(issuer, key, { token, header: { jwk: { kty: 'oct', k: 'AAAA' } } }))), 'dpop_key', 'an oct key in jwk');
  await badProof(t, verifier.verify(token, dpop(await proof(issuer, key, { token, header: { jwk: undefined } }))), 'dpop_key', 'no jwk');
  const rsa = await proofKey('RS256');
  // (a token bound to that RSA key: the thumbprint is compared before the signature is checked)
  const rsaToken = await issuer.signAccessToken({ cnf: { jkt: rsa.jkt } });
  await badProof(t, verifier.verify(rsaToken, dpop(await proof(issuer, key, { token: rsaToken, header: { jwk: rsa.jwk } }))), 'dpop_key', 'an RSA jwk for alg ES256');
  // a good proof whose payload was changed after signing
  const good = await proof(issuer, key, { token });
  const [h, , s] = good.split('.');
  const forged = `${h}.${base64url.encode(JSON.stringify({ jti: 'x', htm: 'POST', htu: URL_ME, iat: Math.floor(issuer.now() / 1000), ath: ath(token) }))}.${s}`;
  await badProof(t, verifier.verify(token, dpop(forged)), 'dpop_signature', 'a changed payload');
  await badProof(t, verifier.verify(token, dpop('not-a-jwt')), 'dpop_malformed', 'not a JWT');
  t.ok(await verifier.verify(token, dpop(good)), 'and the untouched proof passes');
});

t.test('dpopAlgorithms pins the proof algorithms', async (t) => {
  const { issuer, verifier, token } = await setup(t, { dpopAlgorithms: ['ES256'] });
  const ed = await proofKey('EdDSA');
  const edToken = await issuer.signAccessToken({ cnf: { jkt: ed.jkt } });
  await badProof(t, verifier.verify(edToken, dpop(await proof(issuer, ed, { token: edToken }))), 'dpop_algorithm', 'EdDSA when only ES256 is pinned', 'algs="ES256"');
  const e = await refusal(t, verifier.verify(token), 'dpop_bound', 'a bound token as Bearer');
  t.equal(e?.wwwAuthenticate, `DPoP error="invalid_token", error_description="${e?.description}", algs="ES256"`, 'the challenge names the pinned algorithms');
  for (const algs of [['HS256'], ['none'], [], ['ES256', 'HS512']]) {
    t.throws(() => createVerifier({ issuer: issuer.url, audience: AUD, dpopAlgorithms: algs }), TypeError, `dpopAlgorithms ${JSON.stringify(algs)} refused`);
  }
});

t.test('the proof claims: htm, htu, iat, jti, ath', async (t) => {
  const { issuer, verifier, key, token } = await setup(t);
  const p = (o: ProofOptions) => proof(issuer, key, { token, ...o });
  await badProof(t, verifier.verify(token, dpop(await p({ htm: 'POST' }))), 'dpop_method', 'htm POST on a GET');
  t.ok(await verifier.verify(token, dpop(await p({ htm: 'POST' }), 'POST')), 'htm POST on a POST');
  await badProof(t, verifier.verify(token, dpop(await p({ htm: 'get' }))), 'dpop_method', 'htm is case-sensitive');
  await badProof(t, verifier.verify(token, dpop(await p({ htu: 'https://api.example.com/other' }))), 'dpop_url', 'another path');
  await badProof(t, verifier.verify(token, dpop(await p({ htu: 'https://evil.example.com/me' }))), 'dpop_url', 'another host');
  await badProof(t, verifier.verify(token, dpop(await p({ htu: 'http://api.example.com/me' }))), 'dpop_url', 'another scheme');
  await badProof(t, verifier.verify(token, dpop(await p({ htu: '/me' }))), 'dpop_url', 'a relative htu');
  t.ok(await verifier.verify(token, dpop(await p({ htu: `${URL_ME}?a=1#frag` }), 'GET', `${URL_ME}?b=2`)), 'query and fragment are ignored on both sides');
  t.ok(await verifier.verify(token, dpop(await p({ htu: 'HTTPS://API.Example.COM:443/me' }))), 'scheme, host case and default port are normalized');
  await badProof(t, verifier.verify(token, dpop(await p({}), 'GET', 'not a url')), 'dpop_url', 'a request URL that is no URL');

  // window: 60 s + clockTolerance 30 s in the past, clockTolerance in the future
  t.ok(await verifier.verify(token, dpop(await p({ iatOffset: -85 }))), 'iat 85 s ago');
  await badProof(t, verifier.verify(token, dpop(await p({ iatOffset: -91 }))), 'dpop_iat', 'iat 91 s ago (stale)');
  t.ok(await verifier.verify(token, dpop(await p({ iatOffset: 25 }))), 'iat 25 s ahead (within clockTolerance)');
  await badProof(t, verifier.verify(token, dpop(await p({ iatOffset: 31 }))), 'dpop_iat', 'iat 31 s ahead (future)');
  await badProof(t, verifier.verify(token, dpop(await p({ claims: { iat: undefined } }))), 'dpop_iat', 'no iat');

  await badProof(t, verifier.verify(token, dpop(await p({ claims: { jti: undefined } }))), 'dpop_claims', 'no jti');
  await badProof(t, verifier.verify(token, dpop(await p({ jti: 'x'.repeat(257) }))), 'dpop_claims', 'a jti over 256 characters');
  await badProof(t, verifier.verify(token, dpop(await p({ claims: { htu: undefined } }))), 'dpop_claims', 'no htu');

  await badProof(t, verifier.verify(token, dpop(await p({ claims: { ath: undefined } }))), 'dpop_ath', 'no ath');
  await badProof(t, verifier.verify(token, dpop(await p({ claims: { ath: ath(`${token}x`) } }))), 'dpop_ath', 'the ath of another token');
});

t.test('binding: the proof key is the key of cnf.jkt; the scheme matches the token', async (t) => {
  const { issuer, verifier, key, token } = await setup(t);
  const other = await proofKey();
  await badProof(t, verifier.verify(token, dpop(await proof(issuer, other, { token }))), 'dpop_binding', 'a proof by another key');

  let e = await refusal(t, verifier.verify(token), 'dpop_bound', 'a bound token as a bearer token');
  t.ok(e instanceof InvalidToken);
  t.equal(e?.status, 401);
  t.equal(e?.error, 'invalid_token');
  t.equal(e?.wwwAuthenticate, `DPoP error="invalid_token", error_description="the token is DPoP-bound: send it with the DPoP scheme and a DPoP proof", ${ALGS}`);
  await badProof(t, verifier.verify(token, dpop(undefined)), 'dpop_missing', 'the DPoP scheme without a proof');
  await badProof(t, verifier.verify(token, dpop('')), 'dpop_missing', 'an empty DPoP header');
  const [a, b] = [await proof(issuer, key, { token }), await proof(issuer, key, { token })];
  await badProof(t, verifier.verify(token, dpop([a, b])), 'dpop_multiple', 'two DPoP headers (array)');
  await badProof(t, verifier.verify(token, dpop(`${a}, ${b}`)), 'dpop_multiple', 'two DPoP headers (joined by node)');
  t.ok(await verifier.verify(token, dpop([a])), 'one proof in an array');

  const unbound = await issuer.signAccessToken();
  t.ok(await verifier.verify(unbound), 'an unbound token as a bearer token');
  e = await refusal(t, verifier.verify(unbound, dpop(await proof(issuer, key, { token: unbound }))), 'not_dpop_bound', 'an unbound token with the DPoP scheme, even with a good proof');
  t.equal(e?.error, 'invalid_token');
  t.equal(e?.wwwAuthenticate, `DPoP error="invalid_token", error_description="the token is not DPoP-bound: send it with the Bearer scheme", ${ALGS}`);
  await refusal(t, verifier.verify(await issuer.signAccessToken({ cnf: { jkt: 42 } }), dpop(b)), 'claims', 'a cnf.jkt that is no string');

  // the token's own errors are challenged in the scheme the client used
  const expired = await issuer.signAccessToken({ cnf: { jkt: key.jkt }, exp: Math.floor(issuer.now() / 1000) - 60 });
  e = await refusal(t, verifier.verify(expired, dpop(await proof(issuer, key, { token: expired }))), 'expired', 'an expired bound token');
  t.equal(e?.wwwAuthenticate, `DPoP error="invalid_token", error_description="the token has expired", ${ALGS}`);
  e = await refusal(t, verifier.verify(token, { scope: 'api:write', ...dpop(await proof(issuer, key, { token })) }), 'insufficient_scope', 'a scope the bound token lacks');
  t.equal(e?.status, 403);
  t.equal(e?.wwwAuthenticate, `DPoP error="insufficient_scope", error_description="the token lacks the scope api:write", scope="api:write", ${ALGS}`);
});

t.test('replay: a proof is accepted once', async (t) => {
  const { issuer, verifier, key, token } = await setup(t);
  const p = await proof(issuer, key, { token });
  t.ok(await verifier.verify(token, dpop(p)), 'first use');
  await badProof(t, verifier.verify(token, dpop(p)), 'dpop_replay', 'the same proof again');
  const other = await proof(issuer, key, { token, jti: JSON.parse(Buffer.from(p.split('.')[1]!, 'base64url').toString()).jti, htm: 'POST' });
  await badProof(t, verifier.verify(token, dpop(other, 'POST')), 'dpop_replay', 'another proof with the same jti');

  // a request refused for another reason does not use its proof up
  const q = await proof(issuer, key, { token });
  await refusal(t, verifier.verify(token, { scope: 'api:write', ...dpop(q) }), 'insufficient_scope', 'refused for its scope');
  t.ok(await verifier.verify(token, dpop(q)), 'the same proof then passes where the scope is not required');

  // two instances: each has its own memory unless they share a store
  const second = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {} });
  const r = await proof(issuer, key, { token });
  t.ok(await verifier.verify(token, dpop(r)));
  t.ok(await second.verify(token, dpop(r)), 'without a shared store, another instance accepts the replay (why the README says to share one)');

  const shared = new Map<string, number>();
  const calls: Array<[string, number]> = [];
  const replayStore: ReplayStore = {
    async seen(jti, expiresAt) {
      calls.push([jti, expiresAt]);
      if (shared.has(jti)) return true;
      shared.set(jti, expiresAt);
      return false;
    },
  };
  const rs1 = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {}, replayStore });
  const rs2 = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {}, replayStore });
  const s = await proof(issuer, key, { token, jti: 'shared-1' });
  t.ok(await rs1.verify(token, dpop(s)), 'instance 1 accepts');
  await badProof(t, rs2.verify(token, dpop(s)), 'dpop_replay', 'instance 2 refuses the replay through the shared store');
  t.equal(calls[0]![0], 'shared-1', 'the store is given the jti');
  t.equal(calls[0]![1], (Math.floor(issuer.now() / 1000) + 60 + 30) * 1000, 'and keeps it until iat + dpopMaxAge + clockTolerance (ms)');
  t.throws(() => createVerifier({ issuer: issuer.url, audience: AUD, replayStore: {} as ReplayStore }), TypeError);
});

t.test('the replay cache is bounded; a failing store refuses (fail closed)', async (t) => {
  const { issuer, verifier, key, token, logs } = await setup(t, { dpopReplayCacheSize: 2, dpopReplayEntriesPerKey: 2, dpopMaxAge: 10, clockTolerance: 5 });
  t.ok(await verifier.verify(token, dpop(await proof(issuer, key, { token }))));
  t.ok(await verifier.verify(token, dpop(await proof(issuer, key, { token }))));
  await badProof(t, verifier.verify(token, dpop(await proof(issuer, key, { token }))), 'dpop_replay_unavailable', 'a third live proof: the cache is full');
  t.match(logs, [{ level: 'error', event: 'dpop.replay_cache_full' }], 'logged');
  issuer.advance(16);
  t.ok(await verifier.verify(token, dpop(await proof(issuer, key, { token }))), 'once the first two expired, room again');

  const failing = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: (e) => logs.push(e), replayStore: { seen: () => Promise.reject(new Error('redis down')) } });
  await badProof(t, failing.verify(token, dpop(await proof(issuer, key, { token }))), 'dpop_replay_unavailable', 'a store that fails');
  t.match(logs.at(-1), { level: 'error', event: 'dpop.replay_store_unavailable', error: 'Error: redis down' });
});

// ——— over HTTP ———

interface Answer {
  status: number;
  wwwAuthenticate: string | undefined;
  body: Record<string, unknown>;
}

/** One request over real HTTP with node:http (so two DPoP headers go out as two header lines). */
function send(base: string, path: string, method: string, headers: Record<string, string | string[]>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method, headers }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode!, wwwAuthenticate: res.headers['www-authenticate'], body: data ? (JSON.parse(data) as Record<string, unknown>) : {} }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** What each adapter must do; the server answers GET and POST /me with request.auth, GET /write needs api:write. */
async function httpContract(t: Test, issuer: FakeIssuer, base: string, publicBase: string) {
  const key = await proofKey();
  const token = await issuer.signAccessToken({ cnf: { jkt: key.jkt } });
  const p = (o: ProofOptions = {}) => proof(issuer, key, { token, htu: `${publicBase}/me`, ...o });
  const call = (headers: Record<string, string | string[]>, path = '/me', method = 'GET') => send(base, path, method, headers);

  let r = await call({ authorization: `DPoP ${token}`, dpop: await p() });
  t.equal(r.status, 200, 'DPoP scheme and a good proof: 200');
  t.equal(r.body.sub, 'user-1');
  t.same(r.body.cnf, { jkt: key.jkt });
  r = await call({ authorization: `dpop ${token}`, dpop: await p({ htu: `${publicBase}/me?x=1` }) }, '/me?y=2');
  t.equal(r.status, 200, 'the scheme is case-insensitive; the query is ignored');
  r = await call({ authorization: `DPoP ${token}`, dpop: await p({ htm: 'POST' }) }, '/me', 'POST');
  t.equal(r.status, 200, 'POST with htm POST');

  const refused = async (what: string, headers: Record<string, string | string[]>, error: string, description: string, path = '/me', method = 'GET') => {
    const a = await call(headers, path, method);
    t.equal(a.status, 401, `${what}: 401`);
    t.equal(a.body.error, error, `${what}: ${error}`);
    t.equal(a.body.error_description, description, `${what}: ${description}`);
    t.equal(a.wwwAuthenticate, `DPoP error="${error}", error_description="${a.body.error_description}", ${ALGS}`, `${what}: DPoP challenge`);
    return a;
  };
  await refused('htm GET on a POST', { authorization: `DPoP ${token}`, dpop: await p() }, 'invalid_dpop_proof', 'the DPoP proof htm is not the request method', '/me', 'POST');
  await refused('htu of another path', { authorization: `DPoP ${token}`, dpop: await p({ htu: `${publicBase}/write` }) }, 'invalid_dpop_proof', 'the DPoP proof htu is not the request URL');
  await refused('no DPoP header', { authorization: `DPoP ${token}` }, 'invalid_dpop_proof', 'a DPoP proof is required with this token');
  await refused('two DPoP headers', { authorization: `DPoP ${token}`, dpop: [await p(), await p()] }, 'invalid_dpop_proof', 'more than one DPoP proof');
  const once = await p();
  t.equal((await call({ authorization: `DPoP ${token}`, dpop: once })).status, 200);
  await refused('a replayed proof', { authorization: `DPoP ${token}`, dpop: once }, 'invalid_dpop_proof', 'the DPoP proof has been used before');
  await refused('a stale proof', { authorization: `DPoP ${token}`, dpop: await p({ iatOffset: -120 }) }, 'invalid_dpop_proof', 'the DPoP proof is too old');
  await refused('a proof without ath', { authorization: `DPoP ${token}`, dpop: await p({ claims: { ath: undefined } }) }, 'invalid_dpop_proof', 'the DPoP proof has no ath');
  await refused('a proof by another key', { authorization: `DPoP ${token}`, dpop: await proof(issuer, await proofKey('EdDSA'), { token, htu: `${publicBase}/me` }) }, 'invalid_dpop_proof', 'the DPoP proof is not signed by the key the token is bound to');
  await refused('the bound token as Bearer', { authorization: `Bearer ${token}`, dpop: await p() }, 'invalid_token', 'the token is DPoP-bound: send it with the DPoP scheme and a DPoP proof');
  const unbound = await issuer.signAccessToken();
  await refused('an unbound token with the DPoP scheme', { authorization: `DPoP ${unbound}`, dpop: await proof(issuer, key, { token: unbound, htu: `${publicBase}/me` }) }, 'invalid_token', 'the token is not DPoP-bound: send it with the Bearer scheme');
  t.equal((await call({ authorization: `Bearer ${unbound}` })).status, 200, 'an unbound token as Bearer still passes');

  r = await call({});
  t.equal(r.status, 401, 'no token: 401');
  t.equal(r.wwwAuthenticate, `Bearer, DPoP ${ALGS}`, 'both challenges, without error codes');
  r = await call({ authorization: 'DPoP' });
  t.equal(r.status, 400, 'the DPoP scheme without a token: 400');
  t.equal(r.wwwAuthenticate, `DPoP error="invalid_request", error_description="the Authorization header is malformed", ${ALGS}`);

  r = await call({ authorization: `DPoP ${token}`, dpop: await p({ htu: `${publicBase}/write` }) }, '/write');
  t.equal(r.status, 403, 'a bound token without the scope of the route: 403');
  t.equal(r.wwwAuthenticate, `DPoP error="insufficient_scope", error_description="the token lacks the scope api:write", scope="api:write", ${ALGS}`);
}

async function listen(server: http.Server, t: Test): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('the Fastify plugin over HTTP: the proof URL from the Host header, or from publicUrl', async (t) => {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {} });
  const build = async (publicUrl?: string) => {
    const app = Fastify();
    t.teardown(() => app.close());
    await app.register(async (api) => {
      await api.register(latchkeyAuth, { verifier, publicUrl });
      api.get('/me', async (request) => request.auth);
      api.post('/me', async (request) => request.auth);
    });
    await app.register(async (api) => {
      await api.register(latchkeyAuth, { verifier, publicUrl, scope: 'api:write' });
      api.get('/write', async (request) => request.auth);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  };
  const base = await build();
  await t.test('default: <protocol>://<Host><path>', (t) => httpContract(t, issuer, base, base));
  const proxied = await build('https://api.example.com/');
  await t.test('publicUrl: https://api.example.com', (t) => httpContract(t, issuer, proxied, 'https://api.example.com'));
  const key = await proofKey();
  const token = await issuer.signAccessToken({ cnf: { jkt: key.jkt } });
  const r = await send(proxied, '/me', 'GET', { authorization: `DPoP ${token}`, dpop: await proof(issuer, key, { token, htu: `${proxied}/me` }) });
  t.equal(r.status, 401, 'with publicUrl set, a proof for the internal URL is refused');
  t.same(r.body, { error: 'invalid_dpop_proof', error_description: 'the DPoP proof htu is not the request URL' });
  t.throws(() => fastifyVerifier(verifier, { publicUrl: 'not a url' }), TypeError, 'a publicUrl that is no URL is refused at once');
  t.throws(() => expressVerifier(verifier, { publicUrl: 'ftp://x.example' }), TypeError, 'and one that is not http(s)');
});

t.test('the Express-style middleware over HTTP, with a publicUrl function', async (t) => {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {} });
  const server = (guard: ReturnType<typeof expressVerifier>, writeGuard: ReturnType<typeof expressVerifier>) =>
    http.createServer((req, res) => {
      const mw = req.url?.startsWith('/write') ? writeGuard : guard;
      mw(req as http.IncomingMessage & MiddlewareRequest, res, (err?: unknown) => {
        res.statusCode = err ? 500 : 200;
        res.setHeader('content-type', 'application/json');
        res.end(err ? '{}' : JSON.stringify((req as MiddlewareRequest).auth));
      });
    });
  const base = await listen(server(expressVerifier(verifier), expressVerifier(verifier, { scope: 'api:write' })), t);
  await t.test('default: http://<Host><path>', (t) => httpContract(t, issuer, base, base));
  const publicUrl = (req: MiddlewareRequest) => `https://rs.example.net${req.url}`;
  const proxied = await listen(server(expressVerifier(verifier, { publicUrl }), expressVerifier(verifier, { scope: 'api:write', publicUrl })), t);
  await t.test('publicUrl: (req) => string', (t) => httpContract(t, issuer, proxied, 'https://rs.example.net'));

  // as Express mounted at /api with `trust proxy` sees a request: req.url without the mount path,
  // req.originalUrl with it, req.protocol from X-Forwarded-Proto
  const guard = expressVerifier(verifier);
  const mounted = await listen(
    http.createServer((req, res) => {
      Object.assign(req, { originalUrl: `/api${req.url}`, protocol: 'https' });
      guard(req as http.IncomingMessage & MiddlewareRequest, res, () => res.end('{}'));
    }),
    t,
  );
  const key = await proofKey();
  const token = await issuer.signAccessToken({ cnf: { jkt: key.jkt } });
  const host = mounted.replace('http://', '');
  let r = await send(mounted, '/me', 'GET', { authorization: `DPoP ${token}`, dpop: await proof(issuer, key, { token, htu: `https://${host}/api/me` }) });
  t.equal(r.status, 200, 'the default URL uses req.originalUrl and req.protocol');
  r = await send(mounted, '/me', 'GET', { authorization: `DPoP ${token}`, dpop: await proof(issuer, key, { token, htu: `https://${host}/me` }) });
  t.same([r.status, r.body.error], [401, 'invalid_dpop_proof'], 'a proof for the path without the mount point is refused');
});

// Issue 23, finding 7: a DPoP proof's RSA key must have e = 65537 and a modulus of 2048 to 4096
// bits (a huge exponent cost 7.5 ms of CPU per proof); the claims are read before the signature
// is checked; invalid proofs are counted per address and, past CLIENT_AUTH_FAILURES_PER_IP in a
// window, the address is refused before its proofs are looked at. The keys jose and Node will not
// make (e = 3, a huge e, 8192 bits) are built with BigInt and their proofs signed by hand
// (RSASSA-PKCS1-v1_5, RFC 8017 §8.2), so each proof is valid in every respect but its key.
import t from 'tap';
import crypto from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, type TestEnv } from '../helpers/runtime.js';
import { createClient, type TestClient } from '../helpers/fixtures.js';
import { basic } from '../helpers/flow.js';

t.teardown(dropCreatedDatabases);

const b64 = (n: bigint): string => {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.from(hex, 'hex').toString('base64url');
};
const big = (buf: Buffer): bigint => BigInt(`0x${buf.toString('hex') || '0'}`);
const modPow = (b: bigint, e: bigint, m: bigint): bigint => {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
};
const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, a % b));
const modInv = (a: bigint, m: bigint): bigint => {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
};

interface RawRsa {
  n: bigint;
  e: bigint;
  d: bigint;
}

/** An RSA key from `primes` (two or more) with exponent `e` (or, when `e` is 'huge', a random odd one of 2,000 bits). */
function rawRsa(primes: bigint[], e: bigint | 'huge'): RawRsa {
  const n = primes.reduce((a, p) => a * p, 1n);
  const lambda = primes.reduce((l, p) => (l * (p - 1n)) / gcd(l, p - 1n), 1n);
  let exp = e === 'huge' ? big(crypto.randomBytes(250)) | 1n | (1n << 1999n) : e;
  while (gcd(exp, lambda) !== 1n) exp += 2n;
  return { n, e: exp, d: modInv(exp, lambda) };
}

// DER DigestInfo prefix of SHA-256 (RFC 8017 §9.2 note 1)
const SHA256_PREFIX = Buffer.from('3031300d060960864801650304020105000420', 'hex');

function signRs256(key: RawRsa, input: string): string {
  const k = Math.ceil(key.n.toString(16).length / 2);
  const t = Buffer.concat([SHA256_PREFIX, crypto.createHash('sha256').update(input).digest()]);
  const em = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(k - t.length - 3, 0xff), Buffer.from([0]), t]);
  const s = modPow(big(em), key.d, key.n).toString(16).padStart(k * 2, '0');
  return Buffer.from(s, 'hex').toString('base64url');
}

const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

function rsaProof(key: RawRsa, claims: Record<string, unknown>): string {
  const input = `${enc({ alg: 'RS256', typ: 'dpop+jwt', jwk: { kty: 'RSA', n: b64(key.n), e: b64(key.e) } })}.${enc({ jti: crypto.randomUUID(), ...claims })}`;
  return `${input}.${signRs256(key, input)}`;
}

const prime = (bits: number) => crypto.generatePrimeSync(bits, { bigint: true });
const primesOf = (k: crypto.KeyObject): bigint[] => {
  const jwk = k.export({ format: 'jwk' }) as JWK;
  return [big(Buffer.from(jwk.p!, 'base64url')), big(Buffer.from(jwk.q!, 'base64url'))];
};

async function proofCount(env: TestEnv): Promise<number> {
  return Number((await env.rt.db.selectFrom('dpop_proofs').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
}

// built once: the primes are the slow part
const rsa2048 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const keyCases: [string, RawRsa][] = [
  ['e = 3 (2048 bits)', rawRsa(primesOf(rsa2048), 3n)],
  ['a 2,000-bit exponent (2048 bits)', rawRsa(primesOf(rsa2048), 'huge')],
  ['e = 65537, 1024 bits', rawRsa(primesOf(crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey), 65537n)],
  ['e = 65537, 8192 bits (four primes)', rawRsa([prime(2048), prime(2048), prime(2048), prime(2048)], 65537n)],
  ['e = 65539 (2048 bits)', rawRsa(primesOf(rsa2048), 65539n)],
];
const controls: [string, RawRsa][] = [
  ['e = 65537, 2048 bits', rawRsa(primesOf(rsa2048), 65537n)],
  ['e = 65537, 4096 bits', rawRsa([prime(2048), prime(2048)], 65537n)],
];

for (const backend of backends()) {
  t.test(`DPoP proof keys and the invalid-proof limit (${backend.name})`, async (t) => {
    const env = await createTestEnv(await backend.create(), { env: { DPOP_NONCE: 'false', CLIENT_AUTH_FAILURES_PER_IP: '3' } });
    t.teardown(() => env.close());
    const { issuer } = env.config;
    const tokenUrl = `${issuer}/token`;
    const now = () => Math.floor(env.clock.now() / 1000);
    const api = await createClient(env.rt, ['--name', 'API', '--grant-types', 'client_credentials', '--scopes', 'orders:read', '--audiences', 'https://api.example.com']);
    let address = 0;
    const fresh = () => `10.0.0.${++address}`;
    const cc = async (dpop: string, remoteAddress: string, c: TestClient = api) => {
      const res = await env.app.inject({
        method: 'POST',
        url: '/token',
        remoteAddress,
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(c.clientId, c.clientSecret!), dpop },
        payload: new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:read' }).toString(),
      });
      return { status: res.statusCode, body: res.json() as Record<string, unknown>, headers: res.headers };
    };
    const claims = () => ({ htm: 'POST', htu: tokenUrl, iat: now() });

    t.test('RSA proof keys: e = 65537 and 2048 to 4096 bits only', async (t) => {
      for (const [name, key] of keyCases) {
        const before = await proofCount(env);
        const r = await cc(rsaProof(key, claims()), fresh());
        t.equal(r.status, 400, `${name}: 400`);
        t.equal(r.body.error, 'invalid_dpop_proof', `${name}: invalid_dpop_proof`);
        t.notOk(r.body.access_token, `${name}: no token`);
        t.equal(await proofCount(env), before, `${name}: nothing recorded`);
      }
      for (const [name, key] of controls) {
        const r = await cc(rsaProof(key, claims()), fresh());
        t.equal(r.status, 200, `${name}: accepted`);
        t.equal(r.body.token_type, 'DPoP', `${name}: a bound token`);
      }
    });

    t.test('the claims are checked before the signature', async (t) => {
      const keys = await generateKeyPair('ES256', { extractable: true });
      const jwk = await exportJWK(keys.publicKey);
      const sign = (c: Record<string, unknown>) => new SignJWT({ jti: crypto.randomUUID(), ...c }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(keys.privateKey);
      const broken = async (c: Record<string, unknown>) => (await sign(c)).replace(/.{4}$/, 'AAAA');
      const cases: [string, string, RegExp][] = [
        ['wrong htm', await broken({ ...claims(), htm: 'GET' }), /htm/],
        ['wrong htu', await broken({ ...claims(), htu: `${issuer}/par` }), /htu/],
        ['stale iat', await broken({ ...claims(), iat: now() - 3600 }), /too old/],
        ['no jti', (await broken(claims())).replace(/^([^.]+)\.[^.]+/, (_m, h: string) => `${h}.${enc(claims())}`), /jti/],
      ];
      for (const [name, p, description] of cases) {
        const r = await cc(p, fresh());
        t.equal(r.body.error, 'invalid_dpop_proof', name);
        t.match(r.body.error_description, description, `${name}: refused for its claims, whatever the signature`);
      }
      const good = await cc(await sign(claims()), fresh());
      t.equal(good.status, 200, 'the same proof, well signed, is accepted');
    });

    t.test('invalid proofs are counted per address', async (t) => {
      const keys = await generateKeyPair('ES256', { extractable: true });
      const jwk = await exportJWK(keys.publicKey);
      const sign = (c: Record<string, unknown> = claims()) => new SignJWT({ jti: crypto.randomUUID(), ...c }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(keys.privateKey);
      const attacker = fresh();
      const honest = fresh();
      for (let i = 0; i < 5; i++) t.equal((await cc(await sign(), honest)).status, 200, 'good proofs are not counted');
      for (let i = 0; i < 3; i++) {
        const r = await cc(rsaProof(keyCases[1]![1], claims()), attacker);
        t.equal(r.body.error, 'invalid_dpop_proof', `invalid proof ${i + 1}: refused for itself`);
      }
      const before = await proofCount(env);
      const blocked = await cc(await sign(), attacker);
      t.equal(blocked.status, 429, 'past the limit the address is refused, even with a good proof');
      t.equal(blocked.body.error, 'temporarily_unavailable');
      t.ok(Number(blocked.headers['retry-after']) > 0, 'with Retry-After');
      t.notOk(blocked.body.access_token);
      t.equal(await proofCount(env), before, 'nothing recorded');
      // the resource endpoints are behind the same count
      const ui = await env.app.inject({ method: 'GET', url: '/userinfo', remoteAddress: attacker, headers: { authorization: 'DPoP abc', dpop: await sign({ htm: 'GET', htu: `${issuer}/userinfo`, iat: now() }) } });
      t.equal(ui.statusCode, 429, '/userinfo refuses the address too');
      t.equal((await cc(await sign(), honest)).status, 200, 'another address is not affected');
      t.equal((await cc('not-a-jwt', honest)).status, 400);
      env.clock.advance(env.config.rateLimitWindowSeconds);
      t.equal((await cc(await sign(), attacker)).status, 200, 'the next window accepts the address again');

      // an address refused for its client authentications is refused before its proof is checked
      const guesser = fresh();
      for (let i = 0; i < 3; i++) t.equal((await cc(await sign(), guesser, { ...api, clientSecret: 'wrong' })).body.error, 'invalid_client');
      const refused = await cc(rsaProof(keyCases[1]![1], claims()), guesser);
      t.equal(refused.status, 429, 'a proof from an address past its client-authentication failures: 429, not looked at');
    });
  });
}

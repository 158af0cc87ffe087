// Issue 23, finding 11: one holder of a valid DPoP-bound token could fill @latchkey/verify's replay
// cache, after which every DPoP request was refused; now each proof key holds at most
// dpopReplayEntriesPerKey live entries, and only that key's requests are refused past it.
// Finding 12: the guards build htu from the Host header when publicUrl is unset; with
// NODE_ENV=production they refuse to be built without publicUrl.
import Fastify from 'fastify';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { createHash } from 'node:crypto';
import t from 'tap';
import { createVerifier, expressVerifier, fastifyVerifier, InvalidDpopProof, latchkeyAuth, type VerifyOptions } from '../../packages/verify/src/index.js';
import type { LogEntry } from '../../packages/verify/src/status-list.js';
import { startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.js';

const AUD = 'https://api.example.com';
const URL_ME = 'https://api.example.com/me';

interface ProofKey {
  privateKey: CryptoKey;
  jwk: JWK;
  jkt: string;
}

async function proofKey(): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

let n = 0;
async function proof(issuer: FakeIssuer, key: ProofKey, token: string, jti = `p-${++n}`): Promise<string> {
  const ath = createHash('sha256').update(token).digest('base64url');
  return new SignJWT({ jti, htm: 'GET', htu: URL_ME, iat: Math.floor(issuer.now() / 1000), ath })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
    .sign(key.privateKey);
}

const dpop = (p: string): VerifyOptions => ({ dpop: { proof: p, method: 'GET', url: URL_ME } });

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (err) {
    return err instanceof InvalidDpopProof ? err.reason : `other: ${(err as Error).message}`;
  }
}

t.test('one key cannot fill the replay cache', async (t) => {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const logs: LogEntry[] = [];
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: (e) => logs.push(e), dpopReplayCacheSize: 10, dpopReplayEntriesPerKey: 3, dpopMaxAge: 10, clockTolerance: 5 });
  const greedy = await proofKey();
  const greedyToken = await issuer.signAccessToken({ cnf: { jkt: greedy.jkt } });
  for (let i = 0; i < 3; i++) t.equal(await reason(verifier.verify(greedyToken, dpop(await proof(issuer, greedy, greedyToken)))), 'accepted', `proof ${i + 1} of the greedy key`);
  for (let i = 0; i < 20; i++) t.equal(await reason(verifier.verify(greedyToken, dpop(await proof(issuer, greedy, greedyToken)))), 'dpop_replay_quota', 'past its quota, the key is refused');
  t.match(logs, [{ level: 'warn', event: 'dpop.replay_key_quota' }], 'logged');
  t.equal(logs.filter((e) => e.event === 'dpop.replay_key_quota').length, 1, 'once, not once a request');

  // everyone else still gets in: the cache holds 10, the greedy key only 3 of them
  for (let k = 0; k < 2; k++) {
    const key = await proofKey();
    const token = await issuer.signAccessToken({ cnf: { jkt: key.jkt } });
    for (let i = 0; i < 3; i++) t.equal(await reason(verifier.verify(token, dpop(await proof(issuer, key, token)))), 'accepted', `another key (${k + 1}), proof ${i + 1}`);
  }
  t.equal(await reason(verifier.verify(greedyToken, dpop(await proof(issuer, greedy, greedyToken, 'p-1')))), 'dpop_replay', 'a replay is still a replay');

  // its entries expire with their proofs: then the key may send again
  issuer.advance(16);
  t.equal(await reason(verifier.verify(greedyToken, dpop(await proof(issuer, greedy, greedyToken)))), 'accepted', 'once its proofs expired, room again');

  t.throws(() => createVerifier({ issuer: issuer.url, audience: AUD, dpopReplayEntriesPerKey: 0 }), TypeError);
  t.throws(() => createVerifier({ issuer: issuer.url, audience: AUD, dpopReplayCacheSize: 10, dpopReplayEntriesPerKey: 11 }), TypeError, 'more per key than the whole cache');
});

t.test('the default quota is a hundredth of the cache', async (t) => {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {}, dpopReplayCacheSize: 200 });
  const key = await proofKey();
  const token = await issuer.signAccessToken({ cnf: { jkt: key.jkt } });
  for (let i = 0; i < 2; i++) t.equal(await reason(verifier.verify(token, dpop(await proof(issuer, key, token)))), 'accepted');
  t.equal(await reason(verifier.verify(token, dpop(await proof(issuer, key, token)))), 'dpop_replay_quota');
});

t.test('a shared replayStore is told the proof key', async (t) => {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const calls: unknown[][] = [];
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: () => {}, replayStore: { seen: (...args: unknown[]) => (calls.push(args), false) } });
  const key = await proofKey();
  const token = await issuer.signAccessToken({ cnf: { jkt: key.jkt } });
  await verifier.verify(token, dpop(await proof(issuer, key, token, 'the-jti')));
  t.equal(calls[0]![0], 'the-jti');
  t.equal(calls[0]![2], key.jkt, 'the third argument is the thumbprint, for a store that bounds entries per key');
});

t.test('NODE_ENV=production: the guards need publicUrl', async (t) => {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, onLog: () => {} });
  const saved = process.env.NODE_ENV;
  t.teardown(() => {
    if (saved === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved;
  });
  process.env.NODE_ENV = 'production';
  t.throws(() => fastifyVerifier(verifier), /publicUrl/, 'fastifyVerifier');
  t.throws(() => expressVerifier(verifier), /publicUrl/, 'expressVerifier');
  const app = Fastify();
  t.teardown(() => app.close());
  void app.register(latchkeyAuth, { verifier });
  await t.rejects(async () => app.ready(), /publicUrl/, 'latchkeyAuth: the app does not start');
  t.doesNotThrow(() => fastifyVerifier(verifier, { publicUrl: 'https://api.example.com' }), 'a string');
  t.doesNotThrow(() => expressVerifier(verifier, { publicUrl: (req) => `https://api.example.com${req.url}` }), 'or a function (several hosts: the Host header trusted on purpose)');
  delete process.env.NODE_ENV;
  t.doesNotThrow(() => fastifyVerifier(verifier), 'outside production the Host header is used');
});

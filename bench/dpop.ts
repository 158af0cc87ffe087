// The DPoP (RFC 9449) client_credentials workload (issue 15): POST /token with a fresh DPoP proof on
// every request, Latchkey (its defaults: DPOP_NONCE on) against node-oidc-provider with features.dPoP
// on — once as it ships (no nonces) and once with a nonceSecret and nonces required ("peer-nonce").
//
// The proofs: one ES256 key per server (one client, one key, as a real client holds), and before every
// warm-up and measured run (`reset`, outside the timed window) a pool of proofs signed with jose's SignJWT
// (WebCrypto key): random jti, iat = now, htm POST, htu = the token endpoint, and the server's current nonce
// when it requires one (fetched just before signing from its use_dpop_nonce answer). The pool holds twice
// what the run is expected to use (2 × the fastest rate seen so far on that server × the run's length);
// autocannon takes one per request in `setupRequest`. Should the pool run out, or a use_dpop_nonce answer
// show the nonce has gone stale, proofs are signed synchronously inside the window (node:crypto, with the
// newest nonce the server sent) and counted in the report, since that load-generator CPU is then in the run.
//
// Answers are checked as they come (a 200 must say token_type DPoP; a 400 use_dpop_nonce is counted as
// such, and as an error), and sampled 200 bodies are decoded after the run: their access token's cnf.jkt
// must be the proof key's RFC 7638 thumbprint. Before timing, `prepare` checks the whole contract once per
// server: without a nonce, with one, replayed, and signed by the synchronous fallback.
import crypto, { type webcrypto } from 'node:crypto';
import path from 'node:path';
import autocannon from 'autocannon';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { PeerConfig } from './peer.js';
import { basicAuth, form, request, type HttpResponse } from './lib/http.js';
import { assertAvailable, discover, NotAvailable, type Target } from './lib/oauth.js';
import { freePort, startChild, waitFor200, type Child } from './lib/procs.js';
import { fmt, median, type RunResult } from './lib/stats.js';
import type { Prepared, Workload } from './workloads/types.js';

export const DPOP_WORKLOAD = 'dpop_client_credentials';
/** The second peer: node-oidc-provider with DPoP nonces required. */
export const NONCE_PEER = 'peer-nonce';

/** Rate assumed for a server's first pool (its warm-up), before one has been measured. */
const FIRST_GUESS_RPS = 4000;

interface ProofKey {
  privateKey: webcrypto.CryptoKey;
  keyObject: crypto.KeyObject;
  jwk: JWK;
  /** RFC 7638 SHA-256 thumbprint, base64url */
  jkt: string;
  /** the protected header, base64url, for the synchronous signer */
  headerB64: string;
}

async function newKey(): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const pub: JWK = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  return {
    privateKey: privateKey as webcrypto.CryptoKey,
    keyObject: crypto.KeyObject.from(privateKey as webcrypto.CryptoKey),
    jwk: pub,
    jkt: await calculateJwkThumbprint(pub, 'sha256'),
    headerB64: Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: pub })).toString('base64url'),
  };
}

const now = () => Math.floor(Date.now() / 1000);
const jti = () => crypto.randomBytes(16).toString('base64url');

function claims(htu: string, nonce: string | undefined): Record<string, unknown> {
  return { jti: jti(), htm: 'POST', htu, iat: now(), ...(nonce ? { nonce } : {}) };
}

function signAsync(k: ProofKey, htu: string, nonce: string | undefined): Promise<string> {
  return new SignJWT(claims(htu, nonce)).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: k.jwk }).sign(k.privateKey);
}

/** The in-window fallback: synchronous, so autocannon's setupRequest can call it. */
function signSync(k: ProofKey, htu: string, nonce: string | undefined): string {
  const input = `${k.headerB64}.${Buffer.from(JSON.stringify(claims(htu, nonce))).toString('base64url')}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key: k.keyObject, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

async function signPool(k: ProofKey, htu: string, nonce: string | undefined, n: number): Promise<string[]> {
  const out: string[] = [];
  const BATCH = 1024;
  for (let i = 0; i < n; i += BATCH) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(BATCH, n - i) }, () => signAsync(k, htu, nonce)))));
  }
  return out;
}

const DPOP_TYPE = /"token_type"\s*:\s*"DPoP"/;

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name] ?? h[Object.keys(h).find((x) => x.toLowerCase() === name) ?? ''];
  return Array.isArray(v) ? v[0] : v;
}

function errorCode(res: { body: string }): string | undefined {
  try {
    return (JSON.parse(res.body) as { error?: string }).error;
  } catch {
    return undefined;
  }
}

/** The per-run facts the DPoP section of the report prints (one entry per warm-up and measured run). */
export interface DpopRunStats {
  target: string;
  connections: number;
  measured: boolean;
  nonceRequired: boolean;
  poolSize: number;
  poolSignMs: number;
  /** seconds from the first proof's iat to the run's end: the oldest a pooled proof can have been when sent */
  maxProofAgeS: number;
  proofsUsed: number;
  signedInWindow: number;
  nonceRotations: number;
  useDpopNonce: number;
  notDpop: number;
  samplesChecked: number;
  rps: number;
}
export const dpopRuns: DpopRunStats[] = [];

export function dpopWorkload(opts: { measuredMs: number; warmupMs: number }): Workload {
  return {
    name: DPOP_WORKLOAD,
    connections: 50,
    // issue 14's bound for every token workload; no ratio target in issue 15
    targetP99Ms: 50,
    extraTargets: [NONCE_PEER],
    async prepare(t: Target): Promise<Prepared> {
      const algs = t.metadata.dpop_signing_alg_values_supported;
      if (!Array.isArray(algs) || !algs.includes('ES256')) throw new NotAvailable(`dpop_signing_alg_values_supported ${Array.isArray(algs) ? `is ${algs.join(' ')}` : 'absent'} in discovery`);
      const htu = t.endpoints.token;
      const connections = this.connections;
      const key = await newKey();
      const body = form({ grant_type: 'client_credentials', scope: t.scopes.cc, resource: t.resource });
      const headers = { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(t.clients.cc.id, t.clients.cc.secret) };
      const call = (proof: string): Promise<HttpResponse> => request(htu, { method: 'POST', headers: { ...headers, dpop: proof }, body });

      /** A 200 that is a DPoP-bound token for this key, or an Error saying what is wrong. */
      const checkIssued = (res: { status: number; body: string }, what: string): void => {
        if (res.status !== 200) throw new Error(`${what}: ${res.status} ${res.body.slice(0, 200)}`);
        const tok = JSON.parse(res.body) as { access_token?: string; token_type?: string };
        if (tok.token_type !== 'DPoP') throw new Error(`${what}: token_type ${tok.token_type}, not DPoP`);
        let cnf: { jkt?: string } | undefined;
        try {
          cnf = decodeJwt(tok.access_token ?? '').cnf as { jkt?: string } | undefined;
        } catch {
          throw new Error(`${what}: the access token is not a JWT, cnf.jkt cannot be read`);
        }
        if (cnf?.jkt !== key.jkt) throw new Error(`${what}: cnf.jkt ${cnf?.jkt} ≠ the proof key's thumbprint ${key.jkt}`);
      };

      /** The nonce the server wants now (undefined: it requires none), from a proof without one. */
      const currentNonce = async (): Promise<{ nonce: string | undefined; res: HttpResponse }> => {
        const res = await call(await signAsync(key, htu, undefined));
        assertAvailable(res, 'token');
        if (res.status === 200) return { nonce: undefined, res };
        const n = header(res.headers as Record<string, string>, 'dpop-nonce');
        if (res.status === 400 && errorCode(res) === 'use_dpop_nonce' && n) return { nonce: n, res };
        throw new Error(`a proof without a nonce: ${res.status} ${res.body.slice(0, 200)}`);
      };

      // the warm-up check: the contract once, before any timing
      const notes: string[] = [];
      const first = await currentNonce();
      const nonceRequired = first.nonce !== undefined;
      if (nonceRequired) notes.push(`DPoP nonce required: a proof without one answered 400 use_dpop_nonce with a DPoP-Nonce header`);
      else {
        checkIssued(first.res, 'a proof without a nonce');
        notes.push(`DPoP nonce not required: a proof without one was answered 200${header(first.res.headers as Record<string, string>, 'dpop-nonce') ? ' (with a DPoP-Nonce header)' : ''}`);
      }
      let nonce = first.nonce;
      const proof = await signAsync(key, htu, nonce);
      const ok = await call(proof);
      checkIssued(ok, 'a fresh proof');
      const tok = JSON.parse(ok.body) as { access_token: string };
      const at = decodeJwt(tok.access_token);
      const sentNonce = header(ok.headers as Record<string, string>, 'dpop-nonce');
      notes.push(`checked before timing: 200, token_type DPoP, access token ${JSON.parse(Buffer.from(tok.access_token.split('.')[0], 'base64url').toString('utf8')).alg} JWT with cnf.jkt = the proof key's thumbprint (aud ${String(at.aud)}); DPoP-Nonce on a 200: ${sentNonce ? 'yes' : 'no'}`);
      const replay = await call(proof);
      if (replay.status === 200) notes.push('**a replayed proof was accepted** (no jti replay check)');
      else notes.push(`a replayed proof: ${replay.status} ${errorCode(replay) ?? ''}`.trim());
      checkIssued(await call(signSync(key, htu, nonce)), 'a proof from the synchronous fallback signer');

      let expectedRps = FIRST_GUESS_RPS;
      let pool: string[] = [];
      let poolNonce: string | undefined;
      let poolSignMs = 0;
      let poolSignedAt = 0;
      let runIndex = 0;

      /** Outside the timed window: the current nonce, then a pool of proofs for a run of `durationMs`. */
      const reset = async (durationMs?: number) => {
        if (nonceRequired) nonce = (await currentNonce()).nonce;
        const n = Math.ceil(2 * expectedRps * ((durationMs ?? opts.measuredMs) / 1000)) + 2 * connections;
        const t0 = performance.now();
        poolSignedAt = Date.now();
        pool = await signPool(key, htu, nonce, n);
        poolSignMs = performance.now() - t0;
        poolNonce = nonce;
      };

      return {
        notes,
        reset,
        async run(ms): Promise<RunResult & { firstError?: string; detail?: string }> {
          if (pool.length === 0) await reset(ms);
          const mine = pool;
          pool = [];
          let used = 0;
          let signedInWindow = 0;
          let useDpopNonce = 0;
          let notDpop = 0;
          let rotations = 0;
          let latestNonce = poolNonce;
          let firstError: string | undefined;
          const samples: string[] = [];
          let ok200 = 0;
          const result = await autocannon({
            url: htu,
            method: 'POST',
            headers,
            body,
            connections,
            duration: ms / 1000,
            timeout: 10,
            requests: [
              {
                setupRequest(req) {
                  let p: string;
                  // a stale nonce (the server said use_dpop_nonce and sent a newer one): sign with the newer
                  if (used < mine.length && !(useDpopNonce > 0 && latestNonce !== poolNonce)) p = mine[used++];
                  else {
                    signedInWindow++;
                    p = signSync(key, htu, latestNonce);
                  }
                  req.headers = { ...req.headers, DPoP: p };
                  return req;
                },
                onResponse(status, resBody, _ctx, resHeaders) {
                  const n = header(resHeaders as Record<string, string>, 'dpop-nonce');
                  if (n && n !== latestNonce) {
                    if (latestNonce !== undefined) rotations++;
                    latestNonce = n;
                  }
                  if (status === 200) {
                    if (!DPOP_TYPE.test(resBody)) {
                      notDpop++;
                      firstError ??= `200 without token_type DPoP: ${resBody.slice(0, 120)}`;
                    } else if (ok200++ % 1000 === 0 && samples.length < 50) samples.push(resBody);
                  } else {
                    if (status === 400 && resBody.includes('use_dpop_nonce')) useDpopNonce++;
                    firstError ??= `${status} ${resBody.slice(0, 140)}`;
                  }
                },
              },
            ],
          });
          const maxProofAgeS = (Date.now() - poolSignedAt) / 1000;
          // the sampled answers: each access token bound to this key
          let wrongCnf = 0;
          for (const s of samples) {
            try {
              checkIssued({ status: 200, body: s }, 'a sampled answer');
            } catch (err) {
              wrongCnf++;
              firstError ??= (err as Error).message;
            }
          }
          const seconds = result.duration;
          const r: RunResult = {
            rps: result.requests.total / seconds,
            p50: result.latency.p50,
            p99: result.latency.p99,
            errors: result.errors + result.non2xx + notDpop + wrongCnf,
            requests: result.requests.total,
            seconds,
          };
          // run.ts: one warm-up per server (when --warmup > 0), then the measured rounds
          const measured = !(runIndex++ === 0 && opts.warmupMs > 0);
          // the warm-up (1 s, cold) says little: twice its rate, then the fastest measured run
          expectedRps = measured ? Math.max(expectedRps, r.rps) : Math.max(2 * r.rps, 1000);
          if (signedInWindow > 0) expectedRps = Math.max(expectedRps, (used + signedInWindow) / seconds);
          dpopRuns.push({ target: t.name, connections, measured, nonceRequired, poolSize: mine.length, poolSignMs, maxProofAgeS, proofsUsed: used, signedInWindow, nonceRotations: rotations, useDpopNonce, notDpop: notDpop + wrongCnf, samplesChecked: samples.length, rps: r.rps });
          const detail = `pool ${mine.length} (${fmt(poolSignMs, 0)} ms), used ${used}, in-window ${signedInWindow}${nonceRequired ? `, nonce rotations ${rotations}, use_dpop_nonce ${useDpopNonce}` : ''}, cnf checked ${samples.length}`;
          return { ...r, firstError, detail };
        },
      };
    },
  };
}

/** A second node-oidc-provider, the same configuration plus DPoP nonces required, for the DPoP workload. */
export async function startNoncePeer(base: Target, cfg: PeerConfig, root: string): Promise<{ target: Target; child: Child }> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const c: PeerConfig = { ...cfg, port, issuer, dpopNonce: true };
  const t0 = performance.now();
  const child = startChild(NONCE_PEER, ['--import', 'tsx', path.join(root, 'bench', 'peer.ts')], { PEER_CONFIG: JSON.stringify(c), NODE_ENV: 'production' }, { cwd: root, ipc: true });
  await waitFor200(child, `${issuer}/.well-known/openid-configuration`, t0);
  return { target: { ...base, name: NONCE_PEER, issuer, pid: child.pid, ...(await discover(issuer)) }, child };
}

export const DPOP_PEER_NOTES = [
  "DPoP: `features.dPoP.enabled: true` (node-oidc-provider 9's name for the feature; on by default in 9, set explicitly here); dpopSigningAlgValues its default (ES256, Ed25519, EdDSA); DPoP proofs' jti recorded in its ReplayDetection model, in the same in-memory adapter (LRU) as its tokens",
  `DPoP nonces: the peer as it ships requires none (its \`requireNonce\` default returns false and no \`nonceSecret\` is set; without a nonce it accepts a proof whose iat is within 300 s). ${NONCE_PEER}: a second peer process with \`nonceSecret\` (32 random bytes) and \`requireNonce: () => true\`, i.e. nonces required at /token as Latchkey's DPOP_NONCE default does; its nonces are HKDF over 60 s steps, any of 5 steps accepted`,
];

type OutcomeLike = { workload: { name: string; connections: number }; perTarget: Record<string, { status: string; reason?: string; runs: (RunResult & { round: number; position: number; cpuMsPerRequest?: number; pgCpuMsPerRequest?: number })[]; median?: RunResult }> };

const NAMES: Record<string, string> = { latchkey: 'Latchkey (defaults: DPOP_NONCE on)', peer: 'node-oidc-provider, nonces off (its default)', [NONCE_PEER]: 'node-oidc-provider, nonces required (nonceSecret)' };

/** The DPoP section of the report: the three servers side by side, the ratios, and how the proofs were made. */
export function dpopSection(outcomes: OutcomeLike[]): string {
  const mine = outcomes.filter((o) => o.workload.name === DPOP_WORKLOAD);
  if (mine.length === 0) return '';
  const pairRatio = (a: (RunResult & { round: number })[] | undefined, b: (RunResult & { round: number })[] | undefined) => {
    const rs = (a ?? []).flatMap((x) => (b ?? []).filter((y) => y.round === x.round && y.rps > 0).map((y) => x.rps / y.rps));
    return rs.length ? median(rs) : NaN;
  };
  const rows = [
    '| conn | server | req/s | p50 ms | p99 ms | errors | node CPU ms/req | Postgres CPU ms/req | Latchkey / this server |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const o of mine) {
    const l = o.perTarget.latchkey;
    for (const name of ['latchkey', 'peer', NONCE_PEER]) {
      const pt = o.perTarget[name];
      if (!pt) continue;
      if (pt.status !== 'ok' || !pt.median) {
        rows.push(`| ${o.workload.connections} | ${NAMES[name] ?? name} | ${pt.status === 'na' ? 'n/a' : 'error'}: ${(pt.reason ?? '').slice(0, 120)} | | | | | | |`);
        continue;
      }
      const m = pt.median;
      const cpu = median(pt.runs.map((x) => x.cpuMsPerRequest ?? NaN));
      const pgc = median(pt.runs.map((x) => x.pgCpuMsPerRequest ?? NaN));
      const ratio = name === 'latchkey' ? '' : (() => {
        const r = pairRatio(l?.runs, pt.runs);
        return Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a';
      })();
      rows.push(`| ${o.workload.connections} | ${NAMES[name] ?? name} | ${fmt(m.rps)} | ${fmt(m.p50, 2)} | ${fmt(m.p99, 2)} | ${m.errors} | ${fmt(cpu, 3)} | ${name === 'latchkey' ? fmt(pgc, 3) : '–'} | ${ratio} |`);
    }
  }
  const runs = [
    '| conn | server | run | req/s | proofs pre-signed | signing ms (outside the window) | oldest iat at the run\'s end, s | proofs used | signed inside the window | nonce rotations seen | use_dpop_nonce answers | wrong answers (no DPoP / cnf.jkt) | cnf.jkt samples checked |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...dpopRuns.map((x) => `| ${x.connections} | ${x.target} | ${x.measured ? 'measured' : 'warm-up'} | ${fmt(x.rps)} | ${x.poolSize} | ${fmt(x.poolSignMs, 0)} | ${fmt(x.maxProofAgeS, 1)} | ${x.proofsUsed} | ${x.signedInWindow} | ${x.nonceRequired ? x.nonceRotations : '–'} | ${x.nonceRequired ? x.useDpopNonce : '–'} | ${x.notDpop} | ${x.samplesChecked} |`),
  ];
  const measured = dpopRuns.filter((x) => x.measured);
  const inWindow = measured.reduce((a, x) => a + x.signedInWindow, 0);
  const rotations = measured.reduce((a, x) => a + x.nonceRotations, 0);
  const nonceErrors = measured.reduce((a, x) => a + x.useDpopNonce, 0);
  return [
    '## DPoP client_credentials (issue 15)',
    '',
    'POST /token, `grant_type=client_credentials` (client_secret_basic, `resource=https://api.example`, scope api:read) with a fresh DPoP proof (RFC 9449) on every request. Latchkey runs with its defaults (DPoP nonces required at /token: `DPOP_NONCE` on); node-oidc-provider with `features.dPoP` enabled, as it ships (no nonces) and, as a second process, with nonces required. "Latchkey / this server" is the median of the per-round ratios; the summary table above compares with the peer as it ships (nonces off).',
    '',
    ...rows,
    '',
    '### How the proofs are made',
    '',
    '- one ES256 key per server (one client, one key); before every warm-up and measured run, outside the timed window, the load generator (the bench\'s own process, which also runs autocannon) signs a pool of proofs with jose `SignJWT` and a WebCrypto key: random 128-bit jti, iat = now, htm POST, htu = the token endpoint, and the server\'s current nonce when it requires one (fetched just before, from the `DPoP-Nonce` header of its 400 use_dpop_nonce answer to a proof without one)',
    '- pool size: 2 × the expected rate × the run\'s length, + 2 per connection, where the expected rate is 4,000/s for a server\'s first warm-up, then twice the warm-up\'s rate (at least 1,000/s), then the fastest measured run so far; autocannon takes one proof per request (`requests: [{ setupRequest }]`, one request object, rebuilt for every request), so no proof is sent twice; a proof\'s iat is at most the signing time + the pause + the run old when sent (the table below gives it per run; Latchkey accepts 60 s + 30 s leeway, the peer 300 s without a nonce and any age with one)',
    '- if the pool runs out, or the server answers use_dpop_nonce and has sent a newer nonce, the rest of the run\'s proofs are signed synchronously inside the window (node:crypto, ES256) with the newest nonce: counted below, since that CPU then competes with the servers on the 2 cores',
    `- every answer is checked as it arrives (a 200 must carry token_type DPoP; a 400 use_dpop_nonce is counted as such, and as an error); every 1,000th 200 (up to 50 a run) is decoded after the run: its access token's cnf.jkt must equal the key's RFC 7638 thumbprint. Before timing, each server is checked once: a proof without a nonce, one with the current nonce (200, token_type DPoP, cnf.jkt), the same proof replayed (refused), and a proof from the synchronous signer`,
    `- measured runs: ${inWindow} proofs signed inside the timed window in all; ${rotations} nonce rotations seen (a new DPoP-Nonce value mid-run); ${nonceErrors} use_dpop_nonce answers`,
    '',
    ...runs,
  ].join('\n');
}

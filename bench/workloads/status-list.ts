// Token Status Lists, measured (issue 12):
// - the revocation window an offline resource server sees: a resource server in this process
//   (@latchkey/verify, caching each list for its ttl as a real one does) accepts a token, the token
//   is revoked at /revoke, and the verifier is polled until it refuses the token; the window is
//   from the revocation's answer to the first refusal (run with STATUS_LIST_TTL=2 to keep it short);
// - the size of a list of 2^20 entries with 1% revoked, compressed as the server does it;
// - the status endpoint's req/s at 20 and 50 connections;
// - the CPU cost of the `status` claim when signing an access token.
import crypto from 'node:crypto';
import { CompactSign, generateKeyPair } from 'jose';
import { StatusList } from '@sd-jwt/jwt-status-list';
import { createVerifier, type Verifier } from '../../packages/verify/src/index.js';
import { cannon } from '../lib/cannon.js';
import { createAgent } from '../lib/http.js';
import { clientCredentials, revoke, type ClientCreds, type Target } from '../lib/oauth.js';
import { fmt, median, percentile, type RunResult } from '../lib/stats.js';

export interface StatusListResult {
  ttl: number;
  n: number;
  window: { medianMs: number; p99Ms: number; maxMs: number; timeouts: number };
  size: { entries: number; revoked: number; rawBytes: number; lstBytes: number; jwtBytes: number };
  endpoint: Record<number, RunResult>;
  claim: { withoutUs: number; withUs: number; ratio: number; tokenBytes: [number, number] };
}

const DEADLINE_MS = 30_000;
const PARALLEL = 10;

async function refusedAfter(verifier: Verifier, token: string): Promise<number | undefined> {
  const t0 = performance.now();
  while (performance.now() - t0 < DEADLINE_MS) {
    try {
      await verifier.verify(token);
    } catch (err) {
      if ((err as { reason?: string }).reason === 'revoked') return performance.now() - t0;
      throw err;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

/** `clients` are client_credentials clients of `t` (each revocation rotates its client's index). */
export async function measureStatusLists(t: Target, clients: ClientCreds[], ttl: number, n: number, durationMs: number): Promise<StatusListResult> {
  const verifier = createVerifier({ issuer: t.issuer, audience: t.resource!, algorithms: ['ES256'], onLog: () => {} });
  const agent = createAgent(PARALLEL);
  const windows: number[] = [];
  let timeouts = 0;
  for (let done = 0; done < n; done += PARALLEL) {
    const batch = clients.slice(0, Math.min(PARALLEL, n - done));
    await Promise.all(
      batch.map(async (client) => {
        const tok = (await clientCredentials({ ...t, clients: { ...t.clients, cc: client } }, t.resource, agent)).access_token;
        await verifier.verify(tok); // valid, and its list is now cached by the resource server
        await revoke(t, client, tok, 'access_token', agent);
        const ms = await refusedAfter(verifier, tok);
        if (ms === undefined) timeouts++;
        else windows.push(ms);
      }),
    );
  }
  const sorted = [...windows].sort((a, b) => a - b);

  // the list a million families with 1% revoked would publish
  const entries = 1 << 20;
  const statuses = new Array<number>(entries).fill(0);
  let revoked = 0;
  while (revoked < entries / 100) {
    const i = crypto.randomInt(entries);
    if (statuses[i] === 0) {
      statuses[i] = 1;
      revoked++;
    }
  }
  const lst = new StatusList(statuses, 1).compressStatusList();
  const { privateKey } = await generateKeyPair('ES256');
  const listJwt = await new CompactSign(new TextEncoder().encode(JSON.stringify({ iss: t.issuer, sub: `${t.issuer}/statuslists/0`, iat: 0, exp: 30, ttl, status_list: { bits: 1, lst } })))
    .setProtectedHeader({ alg: 'ES256', typ: 'statuslist+jwt', kid: 'x'.repeat(43) })
    .sign(privateKey);

  // the endpoint, as resource servers (or a CDN) hit it
  const endpoint: Record<number, RunResult> = {};
  for (const connections of [20, 50]) endpoint[connections] = await cannon({ url: `${t.issuer}/statuslists/0`, headers: { accept: 'application/statuslist+jwt' } }, connections, durationMs);

  // the claim's cost: the same access-token claims signed with and without `status`
  const base = { iss: t.issuer, sub: crypto.randomUUID(), aud: t.resource, exp: 2e9, iat: 1.9e9, jti: crypto.randomBytes(16).toString('base64url'), client_id: 'c'.repeat(32), scope: 'openid profile email api:read', auth_time: 1.9e9, sid: crypto.randomBytes(16).toString('base64url'), fid: crypto.randomUUID() };
  const withStatus = { ...base, status: { status_list: { idx: 123456, uri: `${t.issuer}/statuslists/0` } } };
  const signMany = async (claims: object, count: number) => {
    const t0 = performance.now();
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes = (await new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg: 'ES256', kid: 'k', typ: 'at+jwt' }).sign(privateKey)).length;
    return { us: ((performance.now() - t0) * 1000) / count, bytes };
  };
  await signMany(base, 2000);
  const a1 = await signMany(base, 10000);
  const b1 = await signMany(withStatus, 10000);
  const a2 = await signMany(base, 10000);
  const b2 = await signMany(withStatus, 10000);
  const withoutUs = (a1.us + a2.us) / 2;
  const withUs = (b1.us + b2.us) / 2;
  return {
    ttl,
    n,
    window: { medianMs: median(windows), p99Ms: percentile(sorted, 99), maxMs: sorted.at(-1) ?? NaN, timeouts },
    size: { entries, revoked, rawBytes: entries / 8, lstBytes: lst.length, jwtBytes: listJwt.length },
    endpoint,
    claim: { withoutUs, withUs, ratio: withUs / withoutUs, tokenBytes: [a1.bytes, b1.bytes] },
  };
}

export function statusListSection(r: StatusListResult | { na: string } | undefined): string {
  if (!r) return '';
  if ('na' in r) return `### Token Status Lists\n\nn/a: ${r.na}`;
  const lines = [
    '### Token Status Lists',
    '',
    `Revocation window at an offline resource server (@latchkey/verify in the bench process, STATUS_LIST_TTL=${r.ttl}), from the /revoke answer to the first refusal, over ${r.n} revocations: **median ${fmt(r.window.medianMs, 0)} ms, p99 ${fmt(r.window.p99Ms, 0)} ms, max ${fmt(r.window.maxMs, 0)} ms**${r.window.timeouts ? `, ${r.window.timeouts} not refused within ${DEADLINE_MS / 1000} s` : ''} (bound: ttl + about 1 s = ${r.ttl * 1000 + 1000} ms). Without status lists it is the access-token lifetime.`,
    '',
    `A list of ${r.size.entries.toLocaleString('en')} entries with ${r.size.revoked.toLocaleString('en')} (1%) revoked: ${(r.size.rawBytes / 1024).toFixed(0)} KiB of bits, \`lst\` ${(r.size.lstBytes / 1024).toFixed(1)} KiB after ZLIB and base64url, the signed JWT ${(r.size.jwtBytes / 1024).toFixed(1)} KiB.`,
    '',
    '| `GET /statuslists/0` | req/s | p50 ms | p99 ms | errors |',
    '|---|--:|--:|--:|--:|',
    ...Object.entries(r.endpoint).map(([c, x]) => `| ${c} connections | ${fmt(x.rps, 0)} | ${fmt(x.p50)} | ${fmt(x.p99)} | ${x.errors} |`),
    '',
    `The \`status\` claim: signing an access token costs ${fmt(r.claim.withUs, 1)} µs with it against ${fmt(r.claim.withoutUs, 1)} µs without (×${r.claim.ratio.toFixed(3)}; ES256, WebCrypto key, same claims otherwise); the token grows from ${r.claim.tokenBytes[0]} to ${r.claim.tokenBytes[1]} bytes.`,
  ];
  return lines.join('\n');
}

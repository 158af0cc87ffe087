// Back-Channel Logout delay (issue 13): a relying party's logout endpoint in this process; a
// client registered with it; n times: log in, redeem the code, RP-initiated logout with the ID
// token as hint — and the delay from the logout response to the RP receiving the logout token.
// The notice's NOTIFY fires at the logout's commit, so the token may reach the RP before the
// browser has its answer: such a delay is negative.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAgent, request } from '../lib/http.js';
import { exchangeCode, loginSession, type ClientCreds, type Target } from '../lib/oauth.js';
import { fmt, median, percentile } from '../lib/stats.js';

export interface BackchannelResult {
  n: number;
  medianMs: number;
  p99Ms: number;
  maxMs: number;
  /** tokens that reached the RP before the logout response reached the browser */
  beforeAnswer: number;
  timeouts: number;
}

const DEADLINE_MS = 10000;

/** The RP: answers 204 and notes when each logout token arrived, by its sid. */
async function startReceiver(): Promise<{ uri: string; arrival(sid: string): Promise<number | undefined>; close(): Promise<void> }> {
  const arrived = new Map<string, number>();
  const waiting = new Map<string, (t: number) => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const token = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('logout_token') ?? '';
      let sid: string | undefined;
      try {
        sid = (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sid?: string }).sid;
      } catch {
        sid = undefined;
      }
      res.writeHead(sid ? 204 : 400).end();
      if (!sid) return;
      arrived.set(sid, at);
      waiting.get(sid)?.(at);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/backchannel-logout`;
  return {
    uri,
    arrival(sid) {
      const known = arrived.get(sid);
      if (known !== undefined) return Promise.resolve(known);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), DEADLINE_MS);
        waiting.set(sid, (t) => {
          clearTimeout(timer);
          waiting.delete(sid);
          resolve(t);
        });
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * `register(uri)` creates a client with that backchannel_logout_uri (and the target's redirect
 * URI) and returns its credentials.
 */
export async function measureBackchannelLogout(t: Target, register: (uri: string) => Promise<ClientCreds>, n = 100): Promise<BackchannelResult> {
  const rp = await startReceiver();
  try {
    const client = await register(rp.uri);
    const agent = createAgent(4);
    const delays: number[] = [];
    let timeouts = 0;
    for (let i = 0; i < n; i++) {
      const { jar, first } = await loginSession(t, client, 'openid', agent);
      const tok = await exchangeCode(t, client, first.code, first.verifier, agent);
      if (!tok.id_token) throw new Error('no id_token issued');
      const sid = (JSON.parse(Buffer.from(tok.id_token.split('.')[1]!, 'base64url').toString('utf8')) as { sid?: string }).sid;
      if (!sid) throw new Error('the ID token carries no sid');
      const arrival = rp.arrival(sid);
      const u = new URL(`${t.issuer}/logout`);
      u.searchParams.set('id_token_hint', tok.id_token);
      const res = await request(u, { jar }, agent);
      const answeredAt = performance.now();
      if (res.status !== 200) throw new Error(`logout: HTTP ${res.status}`);
      const at = await arrival;
      if (at === undefined) {
        timeouts++;
        continue;
      }
      delays.push(at - answeredAt);
    }
    const sorted = [...delays].sort((x, y) => x - y);
    return { n, medianMs: median(delays), p99Ms: percentile(sorted, 99), maxMs: sorted.at(-1) ?? NaN, beforeAnswer: delays.filter((d) => d < 0).length, timeouts };
  } finally {
    await rp.close();
  }
}

export function backchannelSection(r: BackchannelResult | { na: string } | undefined): string {
  if (!r) return 'not run (--no-revocation)';
  if ('na' in r) return `n/a (${r.na})`;
  return [
    `Delay from the RP-initiated logout's response to the relying party receiving the logout token (one replica, ${r.n} logouts, a fresh login each):`,
    '',
    '| median | p99 | max | before the answer | lost (10 s) |',
    '|---|---|---|---|---|',
    `| ${fmt(r.medianMs, 2)} ms | ${fmt(r.p99Ms, 2)} ms | ${fmt(r.maxMs, 2)} ms | ${r.beforeAnswer} | ${r.timeouts} |`,
    '',
    'A negative delay: the token reached the RP before the browser had its answer (the outbox NOTIFY fires at the commit).',
  ].join('\n');
}

// Revocation propagation between two Latchkey replicas on one Postgres: revoke on A, then poll
// /introspect on B until it answers active:false. Measured, not assumed (issue 6).
import { createAgent } from '../lib/http.js';
import { assertGrantAdvertised, authorize, clientCredentials, exchangeCode, introspect, loginSession, revoke, type ClientCreds, type Target } from '../lib/oauth.js';
import { median, percentile } from '../lib/stats.js';

export interface PropagationResult {
  kind: 'access_token' | 'refresh_token';
  n: number;
  /** ms from the revocation response on A to the first active:false on B */
  medianMs: number;
  p99Ms: number;
  maxMs: number;
  /** introspections of B that still said active:true after A had answered the revocation */
  staleAnswers: number;
  timeouts: number;
}

const POLL_DEADLINE_MS = 10000;

async function pollUntilInactive(b: Target, token: string, hint: string, agent: ReturnType<typeof createAgent>, caller: ClientCreds): Promise<{ ms: number; stale: number } | undefined> {
  const t0 = performance.now();
  let stale = 0;
  while (performance.now() - t0 < POLL_DEADLINE_MS) {
    const a = await introspect(b, token, hint, agent, caller);
    if (a.active === false) return { ms: performance.now() - t0, stale };
    stale++;
    await new Promise((r) => setTimeout(r, 1));
  }
  return undefined;
}

export async function measurePropagation(a: Target, b: Target, kind: 'access_token' | 'refresh_token', n = 100): Promise<PropagationResult> {
  const agent = createAgent(4);
  let mint: () => Promise<{ token: string; client: ClientCreds }>;
  if (kind === 'access_token') {
    mint = async () => ({ token: (await clientCredentials(a, a.resource, agent)).access_token, client: a.clients.cc });
  } else {
    assertGrantAdvertised(a, 'refresh_token');
    const { jar } = await loginSession(a, a.clients.web, a.scopes.web, agent);
    mint = async () => {
      const c = await authorize(a, a.clients.web, a.scopes.web, jar, { allowLogin: false, agent });
      const tok = await exchangeCode(a, a.clients.web, c.code, c.verifier, agent);
      if (!tok.refresh_token) throw new Error('no refresh_token issued');
      return { token: tok.refresh_token, client: a.clients.web };
    };
  }
  const delays: number[] = [];
  let staleAnswers = 0;
  let timeouts = 0;
  for (let i = 0; i < n; i++) {
    const { token, client } = await mint();
    // a refresh token is visible to its own client only; an access token to its audience (the cc client)
    const before = await introspect(b, token, kind, agent, client);
    if (before.active !== true) throw new Error(`replica B does not see a fresh ${kind} as active: ${JSON.stringify(before)}`);
    await revoke(a, client, token, kind, agent);
    const seen = await pollUntilInactive(b, token, kind, agent, client);
    if (!seen) {
      timeouts++;
      continue;
    }
    delays.push(seen.ms);
    staleAnswers += seen.stale;
  }
  const sorted = [...delays].sort((x, y) => x - y);
  return { kind, n, medianMs: median(delays), p99Ms: percentile(sorted, 99), maxMs: sorted.at(-1) ?? NaN, staleAnswers, timeouts };
}

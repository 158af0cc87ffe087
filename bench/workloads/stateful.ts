// The stateful workloads, driven by bench/lib/stats.ts#drive: each virtual client follows its own
// state strictly in sequence (a refresh chain, a browser's login session), as a real client would.
import { createAgent, type CookieJar } from '../lib/http.js';
import { assertGrantAdvertised, authorize, exchangeCode, loginSession, refresh, type Target } from '../lib/oauth.js';
import { drive } from '../lib/stats.js';
import { tokenKind } from './stateless.js';
import type { Workload } from './types.js';

/** Runs `fn` for 0..n-1 with at most `limit` at a time (logins must not flood argon2's queue). */
export async function mapLimit<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

export const refreshWorkload: Workload = {
  name: 'refresh_token',
  connections: 50,
  targetRatio: 1.5,
  targetP99Ms: 50,
  async prepare(t: Target) {
    assertGrantAdvertised(t, 'refresh_token');
    const agent = createAgent(this.connections);
    const web = t.clients.web;
    // every chain is its own grant (its own refresh family) from a login session of its own: the
    // peer puts every authorization of one session into that session's grant, whose token list its
    // in-memory adapter walks on every save, so chains from one shared session made it slower with
    // every run (1.9 → 2.7 ms of CPU per refresh over three rounds, measured 2026-12-02)
    const newChain = async (): Promise<string> => {
      const { first } = await loginSession(t, web, t.scopes.web, agent);
      const tok = await exchangeCode(t, web, first.code, first.verifier, agent);
      if (!tok.refresh_token) throw new Error('authorization_code: no refresh_token issued');
      return tok.refresh_token;
    };
    let chains = [{ rt: await newChain() }];
    const rotated = await refresh(t, web, chains[0].rt, agent);
    if (!rotated.refresh_token || rotated.refresh_token === chains[0].rt) throw new Error('refresh_token: the refresh token was not rotated');
    return {
      notes: [
        `${this.connections} chains, each its own login session and grant, new for every run (node-oidc-provider's in-memory adapter slows as a grant's token list grows); access token: ${tokenKind(rotated.access_token)}${rotated.id_token ? `; ID token: ${tokenKind(rotated.id_token)}` : '; no ID token'}`,
      ],
      // fresh chains for every warm-up and measured run, on both servers
      reset: async () => {
        chains = await mapLimit(this.connections, 4, async () => ({ rt: await newChain() }));
      },
      run: (ms) =>
        drive(
          chains,
          ms,
          async (c) => {
            const r = await refresh(t, web, c.rt, agent);
            if (!r.refresh_token) throw new Error('refresh_token: no new refresh token (rotation expected)');
            c.rt = r.refresh_token;
          },
          // a broken chain (should not happen) starts over from a new session, so the run goes on
          async (c) => {
            c.rt = await newChain();
            return true;
          },
        ),
    };
  },
};

export const authcodeSession: Workload = {
  name: 'authcode_session',
  unit: 'flows/s (GET authorize → code → POST token)',
  connections: 50,
  targetRatio: 1.5,
  targetP99Ms: 50,
  async prepare(t: Target) {
    const agent = createAgent(this.connections);
    const web = t.clients.web;
    const newBrowsers = () => mapLimit(this.connections, 4, async () => ({ jar: (await loginSession(t, web, t.scopes.web, agent)).jar }));
    // one browser (cookie jar with its own login session) per virtual client
    let browsers: { jar: CookieJar }[] = await newBrowsers();
    const check = await authorize(t, web, t.scopes.web, browsers[0].jar, { allowLogin: false, agent });
    const tok = await exchangeCode(t, web, check.code, check.verifier, agent);
    return {
      notes: [
        `${browsers.length} browsers with a login session, new for every run (within a run, each flow adds a refresh token to the browser's grant on the peer); ${check.steps} request(s) to the code; access token: ${tokenKind(tok.access_token)}; ID token: ${tok.id_token ? tokenKind(tok.id_token) : 'none'}`,
      ],
      reset: async () => {
        browsers = await newBrowsers();
      },
      run: (ms) =>
        drive(browsers, ms, async (b) => {
          const a = await authorize(t, web, t.scopes.web, b.jar, { allowLogin: false, agent });
          await exchangeCode(t, web, a.code, a.verifier, agent);
        }),
    };
  },
};

// Keycloak's sizing guide: about 15 password-based logins per second per vCPU.
export const KEYCLOAK_LOGINS_PER_VCPU = 15;

export const passwordLogin: Workload = {
  name: 'password_login',
  unit: 'logins/s (authorize → login page → POST password → code)',
  connections: 8,
  only: ['latchkey'],
  async prepare(t: Target) {
    const agent = createAgent(this.connections);
    const web = t.clients.web;
    const once = await loginSession(t, web, t.scopes.web, agent);
    return {
      notes: [`${once.first.steps} requests per login, a fresh browser each time`],
      run: (ms) =>
        drive(
          Array.from({ length: this.connections }, () => ({})),
          ms,
          async () => {
            await loginSession(t, web, t.scopes.web, agent);
          },
          // a refused login (e.g. a full hashing queue) is counted; back off a little and go on
          () => new Promise<boolean>((r) => setTimeout(() => r(true), 20)),
        ),
    };
  },
};

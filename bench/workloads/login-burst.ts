// A burst of browsers submitting the login form at the same moment (issue 14): each one first
// opens the login page (authorize → login form, outside the timed window), then all POST their
// password at once and follow the redirects to the code. A page that is not a redirect on the way
// to the code is an error page, except a busy page that reloads itself (<meta http-equiv=refresh>):
// that one is followed, as a browser does, and the form submitted again; it is counted as a retry.
import crypto from 'node:crypto';
import { createAgent, CookieJar, form, parseForm, request, type HttpResponse, type ParsedForm } from '../lib/http.js';
import { assertAvailable, type Target } from '../lib/oauth.js';
import { percentile } from '../lib/stats.js';
import type { Workload } from './types.js';

interface Browser {
  jar: CookieJar;
  state: string;
  login: ParsedForm;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function metaRefresh(html: string, base: URL): { seconds: number; url: URL } | undefined {
  const m = /<meta\s+http-equiv=["']?refresh["']?\s+content=["']?(\d+)\s*(?:;\s*url=([^"'>]+))?/i.exec(html);
  if (!m) return undefined;
  return { seconds: Number(m[1]), url: new URL(m[2] ? m[2].replace(/&amp;/g, '&') : base.href, base) };
}

async function openLoginPage(t: Target, agent: ReturnType<typeof createAgent>): Promise<Browser> {
  const jar = new CookieJar();
  const verifier = crypto.randomBytes(32).toString('base64url');
  const state = crypto.randomBytes(12).toString('base64url');
  const u = new URL(t.endpoints.authorization);
  u.search = form({
    response_type: 'code',
    client_id: t.clients.web.id,
    redirect_uri: t.redirectUri,
    scope: t.scopes.web,
    state,
    code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  let res = await request(u, { jar }, agent);
  assertAvailable(res, 'authorize');
  for (let hop = 0; hop < 5 && REDIRECTS.has(res.status); hop++) res = await request(new URL(res.headers.location!, res.url), { jar }, agent);
  const f = res.status === 200 ? parseForm(res.body, res.url) : undefined;
  if (!f?.passwordField || !f.usernameField) throw new Error(`login burst: no login form (${res.status} at ${res.url.pathname})`);
  return { jar, state, login: f };
}

type Outcome = { ok: true; ms: number; retries: number } | { ok: false; ms: number; retries: number; page: string };

async function submit(t: Target, b: Browser, agent: ReturnType<typeof createAgent>): Promise<Outcome> {
  const t0 = performance.now();
  const origin = new URL(t.issuer).origin;
  let retries = 0;
  let f = b.login;
  for (let attempt = 0; attempt < 20; attempt++) {
    const body = { ...f.hidden, [f.usernameField!]: t.user.email, [f.passwordField!]: t.user.password };
    let res: HttpResponse = await request(f.action, { method: 'POST', jar: b.jar, headers: { 'content-type': 'application/x-www-form-urlencoded', origin }, body: form(body) }, agent);
    for (let hop = 0; hop < 8 && REDIRECTS.has(res.status); hop++) {
      const next = new URL(res.headers.location!, res.url);
      if (next.href.startsWith(t.redirectUri)) {
        const ok = next.searchParams.get('code') && next.searchParams.get('state') === b.state;
        return ok ? { ok: true, ms: performance.now() - t0, retries } : { ok: false, ms: performance.now() - t0, retries, page: `redirect ${next.search.slice(0, 120)}` };
      }
      res = await request(next, { jar: b.jar }, agent);
    }
    const refresh = /html/.test(String(res.headers['content-type'] ?? '')) ? metaRefresh(res.body, res.url) : undefined;
    if (!refresh) return { ok: false, ms: performance.now() - t0, retries, page: `${res.status} ${res.body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 160)}` };
    // the busy page reloads itself; the reloaded page is the login form again
    retries++;
    await new Promise((r) => setTimeout(r, refresh.seconds * 1000));
    const again = await request(refresh.url, { jar: b.jar }, agent);
    const nf = again.status === 200 ? parseForm(again.body, again.url) : undefined;
    if (!nf?.passwordField) return { ok: false, ms: performance.now() - t0, retries, page: `after a reload: ${again.status} at ${again.url.pathname}` };
    f = nf;
  }
  return { ok: false, ms: performance.now() - t0, retries, page: 'too many retries' };
}

export const BURST_BROWSERS = 100;

export const loginBurst: Workload = {
  name: 'login_burst',
  unit: 'logins/s while 100 browsers submit the login form at once',
  connections: BURST_BROWSERS,
  only: ['latchkey'],
  async prepare(t: Target) {
    const agent = createAgent(this.connections);
    let browsers: Browser[] = [];
    return {
      notes: [`${this.connections} fresh browsers open the login page, then all submit it at the same moment; a self-reloading busy page is followed and counted as a retry, any other page is an error`],
      reset: async () => {
        browsers = [];
        for (let i = 0; i < this.connections; i += 10) browsers.push(...(await Promise.all(Array.from({ length: Math.min(10, this.connections - i) }, () => openLoginPage(t, agent)))));
      },
      // one burst per run, however long the run is meant to be
      async run() {
        const start = performance.now();
        const outcomes = await Promise.all(browsers.map((b) => submit(t, b, agent)));
        const seconds = (performance.now() - start) / 1000;
        const ok = outcomes.filter((o) => o.ok);
        const sorted = Float64Array.from(ok.map((o) => o.ms)).sort();
        const failed = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
        const retries = outcomes.reduce((a, o) => a + o.retries, 0);
        return {
          rps: ok.length / seconds,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          errors: failed.length,
          requests: ok.length,
          seconds,
          firstError: failed[0]?.page,
          detail: `${ok.length}/${outcomes.length} reached the code in ${seconds.toFixed(2)} s, slowest ${(sorted.at(-1) ?? NaN).toFixed(0)} ms; ${retries} busy-page retries; ${failed.length} error pages`,
        };
      },
    };
  },
};

// A minimal browser over fetch: a cookie jar, manual redirects, and form submission — enough to
// walk the login and consent pages the way a browser would.
export class CookieJar {
  private cookies = new Map<string, string>();
  store(res: Response): void {
    for (const sc of res.headers.getSetCookie()) {
      const [pair] = sc.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0|expires=Thu, 01 Jan 1970/i.test(sc) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  get(name: string): string | undefined {
    return this.cookies.get(name);
  }
  delete(name: string): void {
    this.cookies.delete(name);
  }
  /** A second jar holding the same cookies (a copied, or stolen, session). */
  clone(): CookieJar {
    const copy = new CookieJar();
    for (const [k, v] of this.cookies) copy.cookies.set(k, v);
    return copy;
  }
}

export interface Step {
  status: number;
  url: string;
  location?: string;
  body: string;
  res: Response;
}

export class Browser {
  readonly jar: CookieJar;
  constructor(
    readonly origin: string,
    jar?: CookieJar,
  ) {
    this.jar = jar ?? new CookieJar();
  }

  async get(url: string): Promise<Step> {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: this.jar.header() } });
    this.jar.store(res);
    return { status: res.status, url, location: res.headers.get('location') ?? undefined, body: await res.text(), res };
  }

  async post(url: string, form: Record<string, string>, headers: Record<string, string> = { origin: this.origin }): Promise<Step> {
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: this.jar.header(), 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });
    this.jar.store(res);
    return { status: res.status, url, location: res.headers.get('location') ?? undefined, body: await res.text(), res };
  }

  /** Follow redirects while they stay on our origin; return the first step that leaves it or is not a redirect. */
  async follow(step: Step, max = 10): Promise<Step> {
    let s = step;
    for (let i = 0; i < max && s.location && s.status >= 300 && s.status < 400; i++) {
      const next = new URL(s.location, s.url).href;
      if (!next.startsWith(this.origin)) return s;
      s = await this.get(next);
    }
    return s;
  }
}

export function parseForm(html: string): { action: string; fields: Record<string, string> } {
  const form = /<form[^>]*action="([^"]+)"/.exec(html);
  if (!form) throw new Error('no form on the page');
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) fields[m[1]!] = m[2]!.replace(/&amp;/g, '&').replace(/&quot;/g, '"');
  return { action: form[1]!.replace(/&amp;/g, '&'), fields };
}

/** Walk /authorize → login page → login → (consent) → the client's redirect URI. */
export async function authorizeWithLogin(browser: Browser, authorizationUrl: string, email: string, password: string, opts: { consent?: 'approve' | 'deny' } = {}): Promise<Step> {
  let step = await browser.follow(await browser.get(authorizationUrl));
  if (step.status === 200 && step.body.includes('name="password"')) {
    const { action, fields } = parseForm(step.body);
    step = await browser.follow(await browser.post(action, { ...fields, username: email, password }));
  }
  if (step.status === 200 && step.body.includes('name="decision"')) {
    const { action, fields } = parseForm(step.body);
    step = await browser.follow(await browser.post(action, { ...fields, decision: opts.consent ?? 'approve' }));
  }
  return step;
}

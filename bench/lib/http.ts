// A small keep-alive HTTP client for the stateful drivers: no redirects followed for you, a cookie
// jar per virtual client, HTML forms parsed generically. node:http rather than fetch because the
// load generator shares the two cores with the servers, and fetch's streams cost a lot per request.
import http from 'node:http';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  url: URL;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  jar?: CookieJar;
  timeoutMs?: number;
}

export function createAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
}

const defaultAgent = createAgent(256);

export function request(url: string | URL, opts: RequestOptions = {}, agent: http.Agent = defaultAgent): Promise<HttpResponse> {
  const u = typeof url === 'string' ? new URL(url) : url;
  if (u.protocol !== 'http:') return Promise.reject(new Error(`bench http client: only http: (loopback) URLs, got ${u.href}`));
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.jar) {
    const cookie = opts.jar.header();
    if (cookie) headers.cookie = cookie;
  }
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = http.request(
      { hostname: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: opts.method ?? 'GET', headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          opts.jar?.store(res.headers['set-cookie']);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), url: u });
        });
      },
    );
    req.setTimeout(opts.timeoutMs ?? 10000, () => req.destroy(new Error(`timeout: ${opts.method ?? 'GET'} ${u.pathname}`)));
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** One browser's cookies for one host: name → value; path and domain ignored (one loopback host). */
export class CookieJar {
  private readonly cookies = new Map<string, string>();

  store(setCookie: string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v = ''] = a.trim().split('=');
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') return Date.parse(v) <= Date.now();
        return false;
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  get size(): number {
    return this.cookies.size;
  }
}

export function form(params: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) p.set(k, v);
  return p.toString();
}

/** RFC 6749 §2.3.1: client_id and secret are form-urlencoded before they are joined and base64ed. */
export function basicAuth(clientId: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}`;
}

export function json<T = Record<string, unknown>>(res: HttpResponse): T {
  try {
    return JSON.parse(res.body) as T;
  } catch {
    throw new Error(`expected JSON from ${res.url.pathname} (status ${res.status}): ${res.body.slice(0, 200)}`);
  }
}

export interface ParsedForm {
  action: URL;
  method: string;
  hidden: Record<string, string>;
  usernameField?: string;
  passwordField?: string;
  /** Visible non-password text inputs, in order (e.g. a "login" or "email" field). */
  textFields: string[];
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|#39);/gi, (_m, e: string) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos' || l === '#39') return "'";
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    return String.fromCodePoint(parseInt(l.slice(1), 10));
  });
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  const inner = tag.replace(/^<\w+/, '').replace(/\/?>$/, '');
  for (const m of inner.matchAll(re)) out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  return out;
}

/** The first POST form of an HTML page: where it goes, its hidden inputs, its credential fields. */
export function parseForm(html: string, pageUrl: URL): ParsedForm | undefined {
  const forms = html.match(/<form\b[\s\S]*?<\/form>/gi) ?? [];
  for (const f of forms) {
    const open = /^<form\b[^>]*>/i.exec(f)?.[0] ?? '<form>';
    const fa = attributes(open);
    const method = (fa.method ?? 'get').toLowerCase();
    if (method !== 'post') continue;
    const hidden: Record<string, string> = {};
    const textFields: string[] = [];
    let usernameField: string | undefined;
    let passwordField: string | undefined;
    for (const tag of f.match(/<input\b[^>]*>/gi) ?? []) {
      const a = attributes(tag);
      const type = (a.type ?? 'text').toLowerCase();
      if (!a.name) continue;
      if (type === 'hidden') hidden[a.name] = a.value ?? '';
      else if (type === 'password') passwordField ??= a.name;
      else if (['text', 'email'].includes(type)) {
        textFields.push(a.name);
        if (/^(username|login|email|user)$/i.test(a.name)) usernameField ??= a.name;
      }
    }
    // a submit button with a name (e.g. "prompt" or "decision") carries meaning: send it
    for (const tag of f.match(/<button\b[^>]*>/gi) ?? []) {
      const a = attributes(tag);
      if (a.name && (a.type ?? 'submit').toLowerCase() === 'submit' && !(a.name in hidden)) hidden[a.name] = a.value ?? '';
    }
    usernameField ??= textFields[0];
    return { action: new URL(fa.action ?? pageUrl.href, pageUrl), method, hidden, usernameField, passwordField, textFields };
  }
  return undefined;
}

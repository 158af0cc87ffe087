// Garbage on every route the app has (taken from app.printRoutes(), so routes added later are
// covered too): bad methods, huge headers, invalid JSON and form bodies, oversized bodies, weird
// query strings, percent-encoding errors. Every answer is a 4xx, or the route's normal answer when
// the input is merely ignored; never a 5xx, never a stack trace.
import net from 'node:net';
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

interface Route {
  path: string;
  methods: string[];
}

/** Parse `app.printRoutes({ commonPrefix: false })`: a tree whose children extend their parent's path. */
export function parseRoutes(printed: string): Route[] {
  const routes: Route[] = [];
  const stack: string[] = [];
  for (const line of printed.split('\n')) {
    const m = /^([│ ]*)[├└]── (.*)$/u.exec(line);
    if (!m) continue;
    const depth = [...m[1]].length / 4;
    const rest = m[2];
    const mm = /^(.*?)(?: \(([A-Z, ]+)\))?$/.exec(rest)!;
    const full = (stack[depth - 1] ?? '') + mm[1];
    stack[depth] = full;
    stack.length = depth + 1;
    if (mm[2]) routes.push({ path: full, methods: mm[2].split(',').map((s) => s.trim()) });
  }
  return routes;
}

/** A concrete URL path for a route pattern (parameters and wildcards filled in). */
function concrete(pattern: string): string {
  return pattern.replace(/:[A-Za-z0-9_]+(\([^)]*\))?/g, 'x').replace(/\*/g, 'x');
}

interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/** Send exact bytes; read the whole answer (the request asks the server to close). */
function raw(port: number, request: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.setTimeout(20000, () => {
      sock.destroy();
      reject(new Error('no answer within 20 s'));
    });
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', (err) => {
      // the server may reset after answering an oversized request: keep what arrived
      if (chunks.length > 0) finish();
      else reject(err);
    });
    sock.on('end', () => finish());
    sock.on('connect', () => {
      sock.end(request);
    });
    let done = false;
    function finish(): void {
      if (done) return;
      done = true;
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const head = sep < 0 ? text : text.slice(0, sep);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, head, body: sep < 0 ? '' : text.slice(sep + 4) });
    }
  });
}

function req(method: string, target: string, opts: { headers?: Record<string, string>; body?: string | Buffer; contentLength?: number } = {}): Buffer {
  const body = opts.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body, 'utf8');
  const headers: Record<string, string> = { host: '127.0.0.1', connection: 'close', ...opts.headers };
  if (opts.body !== undefined || opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength ?? body.length);
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

const STACK_TRACE = /\n\s+at [^\n]+:\d+:\d+|node_modules|\/work\/|\.[jt]s:\d+:\d+|"stack"/;

interface Case {
  name: string;
  request: (path: string, route: Route) => Buffer;
  /** The input may be ignored: the route's normal answer is acceptable too. */
  ignorable?: boolean;
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const FORM_HEADERS = { 'content-type': 'application/x-www-form-urlencoded' };

const cases: Case[] = [
  // methods
  ...['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'].map(
    (m): Case => ({ name: `method ${m}`, request: (p, r) => (r.methods.includes(m) ? req('GET', p) : req(m, p)), ignorable: true }),
  ),
  { name: 'method that is not a token', request: (p) => Buffer.from(`G(T ${p} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`) },
  { name: 'lowercase method', request: (p) => Buffer.from(`get ${p} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`) },
  { name: 'HTTP/0.9-style request line', request: (p) => Buffer.from(`GET ${p}\r\n\r\n`), ignorable: true },
  { name: 'unknown HTTP version', request: (p) => Buffer.from(`GET ${p} HTTP/7.2\r\nhost: x\r\nconnection: close\r\n\r\n`) },
  // headers
  { name: 'huge header', request: (p) => req('GET', p, { headers: { 'x-huge': 'a'.repeat(64 * 1024) } }) },
  { name: 'many headers', request: (p) => req('GET', p, { headers: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`x-h${i}`, 'v'])) }) },
  { name: 'huge cookie', request: (p) => req('GET', p, { headers: { cookie: `a=${'b'.repeat(20000)}` } }) },
  { name: 'garbage cookie', request: (p) => req('GET', p, { headers: { cookie: '=;;;%zz=%zz; a="unterminated; \u00ff=\u00fe' } }), ignorable: true },
  { name: 'garbage authorization', request: (p) => req('GET', p, { headers: { authorization: 'Basic %%%not-base64%%%' } }), ignorable: true },
  { name: 'garbage if-none-match', request: (p) => req('GET', p, { headers: { 'if-none-match': '"' + '\\'.repeat(100) } }), ignorable: true },
  { name: 'header with a newline in it', request: (p) => Buffer.from(`GET ${p} HTTP/1.1\r\nhost: x\r\nx-a: b\nc: d\r\nconnection: close\r\n\r\n`) },
  { name: 'header without a colon', request: (p) => Buffer.from(`GET ${p} HTTP/1.1\r\nhost: x\r\nnot a header\r\nconnection: close\r\n\r\n`) },
  { name: 'two content-lengths', request: (p) => Buffer.from(`POST ${p} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\nconnection: close\r\n\r\n{}`) },
  { name: 'content-length and chunked', request: (p) => Buffer.from(`POST ${p} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n0\r\n\r\n`) },
  { name: 'bad chunk size', request: (p) => Buffer.from(`POST ${p} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`) },
  { name: 'absolute-form target with another host', request: (p) => req('GET', `http://evil.example${p}`), ignorable: true },
  // paths
  { name: 'bad percent-encoding in the path', request: (p) => req('GET', `${p}%zz`) },
  { name: 'lone percent in the path', request: (p) => req('GET', `${p}/%`) },
  { name: 'overlong UTF-8 in the path', request: (p) => req('GET', `${p}/%c0%af..%c0%af`) },
  { name: 'encoded NUL in the path', request: (p) => req('GET', `${p}%00`) },
  { name: 'dot segments', request: (p) => req('GET', `/../../..${p}`), ignorable: true },
  { name: 'double slashes', request: (p) => req('GET', `//${p}`), ignorable: true },
  { name: 'very long path', request: (p) => req('GET', `${p}/${'a'.repeat(100000)}`) },
  // query strings
  { name: 'bad percent-encoding in the query', request: (p) => req('GET', `${p}?a=%zz&%=b&c=%e0%80`), ignorable: true },
  { name: 'repeated and bracketed parameters', request: (p) => req('GET', `${p}?a=1&a=2&b[c]=d&__proto__[x]=1&constructor[prototype][y]=2`), ignorable: true },
  { name: 'encoded NUL and control characters in the query', request: (p) => req('GET', `${p}?a=%00%01%1b&%00=x`), ignorable: true },
  { name: 'very long query', request: (p) => req('GET', `${p}?a=${'x'.repeat(12000)}`), ignorable: true },
  { name: 'thousands of parameters', request: (p) => req('GET', `${p}?${Array.from({ length: 1500 }, (_, i) => `p${i}=${i}`).join('&')}`), ignorable: true },
  { name: 'raw non-ASCII in the query', request: (p) => Buffer.concat([Buffer.from(`GET ${p}?a=`), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(' HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')]) },
  // bodies
  { name: 'invalid JSON body', request: (p) => req('POST', p, { headers: JSON_HEADERS, body: '{"a": [1, 2' }) },
  { name: 'JSON prototype pollution', request: (p) => req('POST', p, { headers: JSON_HEADERS, body: '{"__proto__": {"admin": true}, "constructor": {"prototype": {"x": 1}}}' }), ignorable: true },
  { name: 'JSON that is not an object', request: (p) => req('POST', p, { headers: JSON_HEADERS, body: '"just a string"' }), ignorable: true },
  { name: 'empty JSON body', request: (p) => req('POST', p, { headers: JSON_HEADERS, body: '' }), ignorable: true },
  { name: 'deeply nested JSON', request: (p) => req('POST', p, { headers: JSON_HEADERS, body: '['.repeat(20000) + ']'.repeat(20000) }) },
  { name: 'invalid form body', request: (p) => req('POST', p, { headers: FORM_HEADERS, body: 'a=%zz&&=&b=%&c=%e0%80&a=1&a=2&grant_type[]=x' }), ignorable: true },
  { name: 'form body in a bad charset', request: (p) => req('POST', p, { headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-7' }, body: 'a=+ADw-' }), ignorable: true },
  { name: 'oversized JSON body', request: (p) => req('POST', p, { headers: JSON_HEADERS, body: JSON.stringify({ a: 'x'.repeat(200 * 1024) }) }) },
  { name: 'oversized form body', request: (p) => req('POST', p, { headers: FORM_HEADERS, body: `a=${'x'.repeat(200 * 1024)}` }) },
  { name: 'content-length larger than the limit, no body', request: (p) => req('POST', p, { headers: JSON_HEADERS, contentLength: 50 * 1024 * 1024 }) },
  { name: 'body shorter than its content-length', request: (p) => req('POST', p, { headers: FORM_HEADERS, body: 'a=b', contentLength: 10 }) },
  { name: 'unsupported content type', request: (p) => req('POST', p, { headers: { 'content-type': 'application/xml' }, body: '<a/>' }) },
  { name: 'garbage content type', request: (p) => req('POST', p, { headers: { 'content-type': ';;;/=' }, body: 'x' }) },
  { name: 'multipart body', request: (p) => req('POST', p, { headers: { 'content-type': 'multipart/form-data; boundary=zz' }, body: '--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--zz--\r\n' }) },
  { name: 'GET with a JSON body', request: (p) => req('GET', p, { headers: JSON_HEADERS, body: '{"a":' }), ignorable: true },
];

for (const backend of backends()) {
  t.test(`malformed requests on every route (${backend.name})`, async (t) => {
    const env = await createTestEnv(await backend.create(), { listen: true });
    t.teardown(() => env.close());
    const port = Number(new URL(env.config.issuer).port);

    const routes = parseRoutes(env.app.printRoutes({ commonPrefix: false }));
    const paths = routes.map((r) => r.path);
    for (const known of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/.well-known/jwks.json', '/healthz', '/readyz']) {
      t.ok(paths.includes(known), `printRoutes lists ${known}`);
    }
    routes.push({ path: '/no-such-route', methods: [] });

    for (const route of routes) {
      const path = concrete(route.path);
      // the route's normal answers, for inputs it may merely ignore
      const normal = new Set<number>([304]);
      // readiness legitimately flips to 503 when a check is slow on a loaded machine (2 s budget)
      if (route.path === '/readyz') normal.add(200).add(503);
      for (const m of route.methods.length ? route.methods : ['GET']) {
        normal.add((await raw(port, req(m, path, m === 'GET' || m === 'HEAD' ? {} : { headers: FORM_HEADERS, body: '' }))).status);
      }
      for (const c of cases) {
        const a = await raw(port, c.request(path, route));
        const what = `${c.name} on ${route.methods.join(',') || '(unknown)'} ${route.path} → ${a.status}`;
        const acceptable = (a.status >= 400 && a.status < 500) || (c.ignorable === true && normal.has(a.status) && a.status < 500);
        if (!acceptable) t.fail(what, { normal: [...normal], head: a.head, body: a.body.slice(0, 500) });
        if (STACK_TRACE.test(a.body)) t.fail(`${what}: the answer shows a stack trace or a path`, { body: a.body.slice(0, 500) });
      }
      t.pass(`${route.methods.join(',') || '(unknown)'} ${route.path}: ${cases.length} malformed requests, all 4xx or the normal answer, no stack trace`);
    }

    t.notMatch(env.logs(), /"level":(50|60)/, 'no request logged an error');
    // a check may time out once on a loaded machine; a broken server stays at 503
    let status = 0;
    for (let i = 0; i < 5 && status !== 200; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 500));
      status = (await fetch(`${env.config.issuer}/readyz`)).status;
    }
    t.equal(status, 200, 'the server is still ready after all that');
  });
}

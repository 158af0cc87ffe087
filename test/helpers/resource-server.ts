// A resource server as an API team writes it with @latchkey/verify: a separate process (started by
// tests with `node --import tsx`), Fastify with the package's plugin, one route. For the tests it
// has a control route that changes what its fetch of status lists returns, to play a tampering
// cache, a misdirected list, a replayed list or an unreachable issuer.
//   env: ISSUER, AUDIENCE, PORT, ALG (ES256), MAX_STALENESS (60), JWKS_MAX_AGE (60)
import Fastify from 'fastify';
import { createVerifier, fastifyVerifier, type Verifier } from '../../packages/verify/src/index.js';

type Mode = { kind: 'pass' } | { kind: 'tamper' } | { kind: 'serve'; body: string } | { kind: 'down' };

const issuer = process.env.ISSUER!;
const audience = process.env.AUDIENCE!;
let mode: Mode = { kind: 'pass' };
let lastList = '';
const logs: string[] = [];

const listFetch: typeof fetch = async (input, init) => {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  if (!url.includes('/statuslists/')) return fetch(input, init);
  if (mode.kind === 'down') throw new TypeError('fetch failed: connect ECONNREFUSED');
  if (mode.kind === 'serve') return new Response(mode.body, { status: 200, headers: { 'content-type': 'application/statuslist+jwt' } });
  const res = await fetch(input, init);
  if (res.status !== 200) return res;
  const body = await res.text();
  lastList = body;
  if (mode.kind === 'tamper') {
    // one byte of the signature changed, as a cache or a proxy in between could
    const i = body.length - 5;
    const tampered = body.slice(0, i) + (body[i] === 'A' ? 'B' : 'A') + body.slice(i + 1);
    return new Response(tampered, { status: 200, headers: res.headers });
  }
  return new Response(body, { status: 200, headers: res.headers });
};

const make = (): Verifier =>
  createVerifier({
    issuer,
    audience,
    algorithms: [process.env.ALG ?? 'ES256'],
    maxStaleness: Number(process.env.MAX_STALENESS ?? 60),
    jwksMaxAge: Number(process.env.JWKS_MAX_AGE ?? 60),
    fetch: listFetch,
    onLog: (e) => {
      logs.push(`${e.level} ${e.event} ${e.message}`);
    },
  });
let verifier = make();

const app = Fastify();
app.get('/api/me', { preHandler: (req, reply) => fastifyVerifier(verifier)(req, reply) }, async (req) => ({ sub: (req as unknown as { auth: { sub: string } }).auth.sub }));
app.post('/__control', async (req) => {
  const b = req.body as { mode?: string; body?: string; reset?: boolean };
  if (b.reset) verifier = make();
  if (b.mode === 'pass' || b.mode === 'tamper' || b.mode === 'down') mode = { kind: b.mode };
  if (b.mode === 'serve') mode = { kind: 'serve', body: b.body ?? '' };
  return { ok: true };
});
app.get('/__last-list', async () => ({ body: lastList }));
app.get('/__logs', async () => ({ logs }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.stdout.write('ready\n');

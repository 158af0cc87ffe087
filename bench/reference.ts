// The yardstick the performance issue names: a bare Fastify server with precomputed bodies — no
// logging, hooks, security headers, rate limits or database. It serves Latchkey's own discovery
// and JWKS documents, fetched once at start, so the bytes on the wire are Latchkey's. Run by
// bench/run.ts against the peer in the same run, it shows what ratio the machine and the load
// generator allow for these two workloads.
import Fastify from 'fastify';

const [discoveryUrl, jwksUrl, port] = process.argv.slice(2);
if (!discoveryUrl || !jwksUrl || !port) throw new Error('usage: reference.ts <discovery url> <jwks url> <port>');
const discovery = await (await fetch(discoveryUrl)).text();
const jwks = await (await fetch(jwksUrl)).text();

const app = Fastify({ logger: false });
app.get('/.well-known/openid-configuration', (_req, reply) => reply.header('content-type', 'application/json; charset=utf-8').header('cache-control', 'public, max-age=300').send(discovery));
app.get('/.well-known/jwks.json', (_req, reply) => reply.header('content-type', 'application/jwk-set+json; charset=utf-8').header('cache-control', 'public, max-age=300').send(jwks));
await app.listen({ port: Number(port), host: '127.0.0.1' });

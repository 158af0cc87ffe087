// The yardstick for discovery and JWKS (issue 14): a bare node:http server writing the same bytes
// as Latchkey — its status, headers and body for each document, fetched once at start — and
// nothing else: no framework, logging, hooks or database. Latchkey's rate on these two documents
// divided by this server's, in the same run, says how much of the machine's ceiling it keeps.
//   node --import tsx bench/reference.ts <discovery url> <jwks url> <port>
import http from 'node:http';

const [discoveryUrl, jwksUrl, port] = process.argv.slice(2);
if (!discoveryUrl || !jwksUrl || !port) throw new Error('usage: reference.ts <discovery url> <jwks url> <port>');

// hop-by-hop and per-response headers node:http writes itself
const SKIP = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length']);

async function snapshot(url: string): Promise<{ path: string; status: number; headers: [string, string][]; body: Buffer }> {
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  const headers: [string, string][] = [];
  res.headers.forEach((v, k) => {
    if (!SKIP.has(k)) headers.push([k, v]);
  });
  headers.push(['content-length', String(body.length)]);
  return { path: new URL(url).pathname, status: res.status, headers, body };
}

const docs = new Map((await Promise.all([snapshot(discoveryUrl), snapshot(jwksUrl)])).map((d) => [d.path, d]));

const server = http.createServer((req, res) => {
  const d = docs.get(req.url ?? '');
  if (!d || req.method !== 'GET') {
    res.writeHead(404, { 'content-length': '0' }).end();
    return;
  }
  res.writeHead(d.status, d.headers.flat());
  res.end(d.body);
});
server.keepAliveTimeout = 72000;
server.listen(Number(port), '127.0.0.1');

// The floor (issue 14): the least a server can do per request and still answer what the bench's
// workloads ask, on node:http with the same libraries — what any OAuth server on this stack pays
// whatever its design. No framework, no hooks, no logging, no rate limits, no security headers, no
// audit, no revocation checks, no validation beyond what the answer needs.
//
//   POST /token  grant_type=client_credentials: the Basic credentials compared by SHA-256 digest in
//                constant time, then one ES256 access token signed with jose (Latchkey's claim set)
//   POST /token  grant_type=refresh_token: the sealed token opened (Latchkey's AES-GCM construction,
//                src/tokens/refresh-tokens.ts), one UPDATE … RETURNING of the family row in Postgres
//                (a named prepared statement, synchronous_commit on), then an access token and an
//                ID token signed (ES256) and the successor sealed. `refresh_token=new` starts a family.
//   GET /userinfo        the Bearer token looked up in memory (what a verified-token cache does)
//   POST /introspect     Basic credentials as above, the token looked up in memory
//
//   node --import tsx bench/floor-server.ts <port> <postgres url>
// prints "ready" on stdout once it listens.
import crypto from 'node:crypto';
import http from 'node:http';
import { CompactSign, generateKeyPair } from 'jose';
import pg from 'pg';
import { openRefreshToken, sealRefreshToken } from '../src/tokens/refresh-tokens.js';

const [port, databaseUrl] = process.argv.slice(2);
if (!port || !databaseUrl) throw new Error('usage: floor-server.ts <port> <postgres url>');

const ISSUER = `http://127.0.0.1:${port}`;
const CLIENT_ID = 'floor-client';
const CLIENT_SECRET = 'floor-secret-floor-secret-floor-secret';
const SECRET_DIGEST = crypto.hash('sha256', CLIENT_SECRET, 'buffer') as unknown as Buffer;
const refreshSecret = crypto.randomBytes(32);
const { privateKey } = await generateKeyPair('ES256', { extractable: false });
const utf8 = new TextEncoder();
const sign = (claims: Record<string, unknown>, typ: string) => new CompactSign(utf8.encode(JSON.stringify(claims))).setProtectedHeader({ alg: 'ES256', kid: 'floor-key', typ }).sign(privateKey);

const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
await pool.query('CREATE TABLE IF NOT EXISTS floor_families (id uuid PRIMARY KEY, generation int NOT NULL, user_id text NOT NULL, scopes jsonb NOT NULL, rotated_at timestamptz)');
await pool.query('TRUNCATE floor_families');

/** the tokens /userinfo and /introspect know (a verified-token cache's map) */
const known = new Map<string, Record<string, unknown>>();

function clientOk(header: string | undefined): boolean {
  if (!header?.startsWith('Basic ')) return false;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0 || decodeURIComponent(decoded.slice(0, colon)) !== CLIENT_ID) return false;
  const presented = crypto.hash('sha256', decodeURIComponent(decoded.slice(colon + 1)), 'buffer') as unknown as Buffer;
  return crypto.timingSafeEqual(presented, SECRET_DIGEST);
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

function accessClaims(sub: string, scope: string): Record<string, unknown> {
  const iat = Math.floor(Date.now() / 1000);
  return { iss: ISSUER, sub, aud: 'https://api.example', exp: iat + 900, iat, jti: crypto.randomBytes(16).toString('base64url'), client_id: CLIENT_ID, scope, status: { status_list: { idx: 1, uri: `${ISSUER}/status-lists/1` } } };
}

async function token(form: URLSearchParams, res: http.ServerResponse, auth: string | undefined): Promise<void> {
  if (!clientOk(auth)) return send(res, 401, { error: 'invalid_client' });
  const grant = form.get('grant_type');
  if (grant === 'client_credentials') {
    const at = await sign(accessClaims(CLIENT_ID, 'api:read'), 'at+jwt');
    return send(res, 200, { access_token: at, token_type: 'Bearer', expires_in: 900, scope: 'api:read' });
  }
  if (grant !== 'refresh_token') return send(res, 400, { error: 'unsupported_grant_type' });
  const presented = form.get('refresh_token') ?? '';
  const now = new Date();
  type Family = { id: string; generation: number; user_id: string; scopes: string[] };
  let row: Family | undefined;
  if (presented === 'new') {
    ({ rows: [row] } = await pool.query<Family>({ text: `INSERT INTO floor_families VALUES ($1, 1, 'floor-user', '["openid","offline_access","api:read"]', $2) RETURNING id, generation, user_id, scopes`, values: [crypto.randomUUID(), now] }));
  } else {
    const sealed = openRefreshToken(refreshSecret, presented);
    if (!sealed) return send(res, 400, { error: 'invalid_grant' });
    ({ rows: [row] } = await pool.query<Family>({
      name: 'floor_rotate',
      text: 'UPDATE floor_families SET generation = generation + 1, rotated_at = $3 WHERE id = $1 AND generation = $2 RETURNING id, generation, user_id, scopes',
      values: [sealed.familyId, sealed.generation, now],
    }));
  }
  if (!row) return send(res, 400, { error: 'invalid_grant' });
  const scope = row.scopes.join(' ');
  const at = await sign(accessClaims(row.user_id, scope), 'at+jwt');
  const iat = Math.floor(now.getTime() / 1000);
  const idToken = await sign({ iss: ISSUER, sub: row.user_id, aud: CLIENT_ID, exp: iat + 3600, iat, auth_time: iat, azp: CLIENT_ID, at_hash: crypto.hash('sha256', at, 'buffer').subarray(0, 16).toString('base64url') }, 'JWT');
  send(res, 200, { access_token: at, token_type: 'Bearer', expires_in: 900, scope, refresh_token: sealRefreshToken(refreshSecret, row.id, row.generation, now), id_token: idToken });
}

const server = http.createServer((req, res) => {
  const path = req.url ?? '';
  if (req.method === 'GET' && path === '/userinfo') {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const claims = m ? known.get(m[1]!) : undefined;
    if (!claims) return send(res, 401, { error: 'invalid_token' });
    return send(res, 200, { sub: claims.sub, name: 'Bench User', email: 'bench@example.com', email_verified: true });
  }
  if (req.method !== 'POST' || (path !== '/token' && path !== '/introspect' && path !== '/register-token')) return send(res, 404, { error: 'not_found' });
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    if (path === '/register-token') {
      // the driver hands over a token (outside the timed window) for /userinfo and /introspect
      const t = form.get('token') ?? '';
      known.set(t, { sub: form.get('sub') ?? 'floor-user', active: true, client_id: CLIENT_ID, scope: 'openid profile email api:read', token_type: 'Bearer', exp: Math.floor(Date.now() / 1000) + 900 });
      return send(res, 200, { ok: true });
    }
    if (path === '/introspect') {
      if (!clientOk(req.headers.authorization)) return send(res, 401, { error: 'invalid_client' });
      const claims = known.get(form.get('token') ?? '');
      return send(res, 200, claims ?? { active: false });
    }
    token(form, res, req.headers.authorization).catch((err: Error) => send(res, 500, { error: 'server_error', error_description: err.message }));
  });
});
server.keepAliveTimeout = 72000;
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => {
  server.close();
  void pool.end().finally(() => process.exit(0));
});

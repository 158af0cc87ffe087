// A small issuer for @latchkey/verify's tests: a node:http server serving a JWKS and status list
// JWTs signed with jose, with the wire format Latchkey serves, and switches to break each part.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StatusList } from '@sd-jwt/jwt-status-list';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function signingKey(kid: string, alg = 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export interface ListOverrides {
  key?: SigningKey;
  iss?: string;
  sub?: string;
  typ?: string;
  ttl?: number | null;
  exp?: number;
  /** replace the compact JWT before it is sent */
  tamper?: (jwt: string) => string;
}

export interface FakeIssuer {
  url: string;
  key: SigningKey;
  /** keys served in the JWKS */
  jwks: SigningKey[];
  /** the clock the issuer signs with (ms), shared with the verifier under test */
  now: () => number;
  setNow(ms: number): void;
  advance(seconds: number): void;
  /** statuses per list id */
  lists: Map<string, { bits: 1 | 2 | 4 | 8; statuses: number[] }>;
  listUri(id: string): string;
  ttl: number;
  overrides: ListOverrides;
  /** while true, every connection is dropped */
  down: boolean;
  /** requests per path, and 304s answered */
  hits: Map<string, number>;
  notModified: number;
  signAccessToken(claims?: Record<string, unknown>, opts?: { key?: SigningKey; typ?: string; alg?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startFakeIssuer(opts: { keys?: SigningKey[] } = {}): Promise<FakeIssuer> {
  const keys = opts.keys ?? [await signingKey('k1')];
  let clock = Date.UTC(2026, 0, 1);
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    if (fi.down) {
      req.socket.destroy();
      return;
    }
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === '/.well-known/jwks.json') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: fi.jwks.map((k) => k.jwk) }));
      return;
    }
    const m = /^\/statuslists\/([^/]+)$/.exec(path);
    const list = m ? fi.lists.get(m[1]!) : undefined;
    if (!m || !list) {
      res.statusCode = 404;
      res.end();
      return;
    }
    // the ETag names the bits; the JWT itself is re-signed at each full answer
    const etag = `"${createHash('sha256').update(JSON.stringify(list)).digest('base64url')}"`;
    if (req.headers['if-none-match'] === etag) {
      fi.notModified++;
      res.statusCode = 304;
      res.setHeader('etag', etag);
      res.end();
      return;
    }
    signList(m[1]!, list).then(
      (jwt) => {
        res.setHeader('content-type', 'application/statuslist+jwt');
        res.setHeader('cache-control', `public, max-age=${fi.ttl}`);
        res.setHeader('etag', etag);
        res.end(jwt);
      },
      (err: Error) => {
        res.statusCode = 500;
        res.end(err.message);
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  async function signList(id: string, list: { bits: 1 | 2 | 4 | 8; statuses: number[] }): Promise<string> {
    const o = fi.overrides;
    const key = o.key ?? fi.key;
    const iat = Math.floor(clock / 1000);
    const payload: Record<string, unknown> = {
      sub: o.sub ?? fi.listUri(id),
      iat,
      exp: o.exp ?? iat + 600,
      status_list: { bits: list.bits, lst: new StatusList([...list.statuses], list.bits).compressStatusList() },
    };
    if (o.ttl !== null) payload.ttl = o.ttl ?? fi.ttl;
    const jwt = await new SignJWT(payload)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: o.typ ?? 'statuslist+jwt' })
      .setIssuer(o.iss ?? url)
      .sign(key.privateKey);
    return o.tamper ? o.tamper(jwt) : jwt;
  }

  const fi: FakeIssuer = {
    url,
    key: keys[0]!,
    jwks: keys,
    now: () => clock,
    setNow: (ms) => {
      clock = ms;
    },
    advance: (s) => {
      clock += s * 1000;
    },
    lists: new Map([['1', { bits: 1, statuses: new Array<number>(1024).fill(0) }]]),
    listUri: (id) => `${url}/statuslists/${id}`,
    ttl: 10,
    overrides: {},
    down: false,
    hits,
    notModified: 0,
    async signAccessToken(claims = {}, o = {}) {
      const key = o.key ?? fi.key;
      const iat = Math.floor(clock / 1000);
      return new SignJWT({
        iss: url,
        aud: 'https://api.example.com',
        sub: 'user-1',
        client_id: 'client-1',
        scope: 'openid api:read',
        jti: `jti-${Math.random().toString(36).slice(2)}`,
        iat,
        exp: iat + 900,
        status: { status_list: { idx: 3, uri: fi.listUri('1') } },
        ...claims,
      })
        .setProtectedHeader({ alg: o.alg ?? key.alg, kid: key.kid, typ: o.typ ?? 'at+jwt' })
        .sign(key.privateKey);
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return fi;
}

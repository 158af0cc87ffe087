// A relying party's back-channel logout endpoint, as a separate HTTP server in the test. Every
// logout token is validated as OIDC Back-Channel Logout 1.0 §2.6 says: signature with the OP's
// JWKS (jose's createRemoteJWKSet), the client's ID token algorithm, typ logout+jwt, iss, aud,
// iat, exp, the back-channel logout event, sub or sid, no nonce, a jti not seen before.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';

export const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export interface ReceivedToken {
  label: string;
  clientId: string;
  claims: JWTPayload & { sid?: string; events?: Record<string, unknown> };
  alg: string;
  /** The status this RP answered. */
  status: number;
}

/** What the RP answers the n-th (0-based) valid request for a label: a status, or 'hang' (no answer until released). */
export type Policy = (n: number) => number | 'hang';

interface Registration {
  clientId: string;
  alg: string;
  policy: Policy;
  requests: number;
}

export class LogoutRp {
  readonly accepted: ReceivedToken[] = [];
  readonly attempts: ReceivedToken[] = [];
  readonly problems: string[] = [];
  /** jtis answered 200, more than once (an at-least-once redelivery). */
  readonly duplicates: string[] = [];
  private readonly seen = new Set<string>();
  private readonly regs = new Map<string, Registration>();
  private readonly hanging = new Set<() => void>();
  private constructor(
    private readonly server: http.Server,
    readonly origin: string,
  ) {}

  static async start(issuer: string, opts: { now?: () => number } = {}): Promise<LogoutRp> {
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    let rp!: LogoutRp;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void rp.handle(req, Buffer.concat(chunks).toString('utf8'), issuer, jwks, opts.now).then(
          (status) => {
            if (status === 'hang') {
              const answer = () => res.writeHead(200).end();
              rp.hanging.add(answer);
              // only requests whose sender still waits count as held
              res.on('close', () => rp.hanging.delete(answer));
              return;
            }
            res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
          },
          () => res.writeHead(500).end(),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    rp = new LogoutRp(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return rp;
  }

  /** The backchannel_logout_uri for `label`; call register once the client exists. */
  uri(label: string): string {
    return `${this.origin}/backchannel/${label}?tenant=t1`;
  }

  register(label: string, clientId: string, alg = 'RS256', policy: Policy = () => 200): void {
    this.regs.set(label, { clientId, alg, policy, requests: 0 });
  }

  setPolicy(label: string, policy: Policy): void {
    const r = this.regs.get(label);
    if (!r) throw new Error(`unknown label ${label}`);
    r.policy = policy;
    r.requests = 0;
  }

  /** Requests held open right now ('hang') whose sender is still connected. */
  get held(): number {
    return this.hanging.size;
  }

  /** Answer every held request with 200 (its sender may have died meanwhile). */
  releaseHeld(): void {
    const held = [...this.hanging];
    this.hanging.clear();
    for (const answer of held) {
      try {
        answer();
      } catch {
        /* the connection is gone */
      }
    }
  }

  acceptedFor(label: string): ReceivedToken[] {
    return this.accepted.filter((r) => r.label === label);
  }

  private async handle(req: http.IncomingMessage, body: string, issuer: string, jwks: ReturnType<typeof createRemoteJWKSet>, now?: () => number): Promise<number | 'hang'> {
    const m = /^\/backchannel\/([a-z0-9-]+)\?tenant=t1$/.exec(req.url ?? '');
    const reg = m ? this.regs.get(m[1]!) : undefined;
    const problem = (p: string) => {
      this.problems.push(`${m?.[1] ?? req.url}: ${p}`);
      return 400;
    };
    if (!m || !reg) return problem('unknown path');
    if (req.method !== 'POST') return problem(`method ${req.method}`);
    if (!/^application\/x-www-form-urlencoded/.test(req.headers['content-type'] ?? '')) return problem(`content-type ${req.headers['content-type']}`);
    const form = new URLSearchParams(body);
    const token = form.get('logout_token');
    if (!token || [...form.keys()].length !== 1) return problem('the body is not exactly logout_token');
    // §2.6 steps 2-3: the signature (with the alg the client registered), iss, aud, iat, exp
    let claims: ReceivedToken['claims'];
    try {
      const header = decodeProtectedHeader(token);
      if (header.alg !== reg.alg) return problem(`alg ${header.alg}, expected ${reg.alg}`);
      const r = await jwtVerify(token, jwks, {
        issuer,
        audience: reg.clientId,
        algorithms: [reg.alg],
        typ: 'logout+jwt',
        requiredClaims: ['iat', 'exp', 'jti', 'events'],
        currentDate: now ? new Date(now()) : undefined,
        clockTolerance: 30,
      });
      claims = r.payload as ReceivedToken['claims'];
    } catch (err) {
      return problem(`verification: ${(err as Error).message}`);
    }
    // §2.4: exp at most two minutes after iat (recommended), events with the logout event (an object)
    if (claims.exp! - claims.iat! > 120) return problem(`exp - iat = ${claims.exp! - claims.iat!}`);
    const event = claims.events?.[LOGOUT_EVENT];
    if (!event || typeof event !== 'object' || Array.isArray(event)) return problem('no back-channel logout event');
    if (!claims.sub && !claims.sid) return problem('neither sub nor sid');
    if ('nonce' in claims) return problem('a nonce');
    const jti = claims.jti!;
    const answer = reg.policy(reg.requests++);
    const record: ReceivedToken = { label: m[1]!, clientId: reg.clientId, claims, alg: reg.alg, status: answer === 'hang' ? 200 : answer };
    this.attempts.push(record);
    if (answer === 200 || answer === 204 || answer === 'hang') {
      // §2.6 step 7: a jti seen before is a replay
      if (this.seen.has(jti)) this.duplicates.push(jti);
      else {
        this.seen.add(jti);
        this.accepted.push(record);
      }
    }
    return answer;
  }

  async close(): Promise<void> {
    this.releaseHeld();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// Failure rate limits: failed logins per account and per IP, failed client authentications per
// client and per IP (and both per address and subject), in fixed windows of RATE_LIMIT_WINDOW_SECONDS.
//
// An attempt is counted *before* its password or secret is checked, in one atomic step that
// refuses it (429 + Retry-After) when either counter is already at its limit; a success uncounts
// it. So however many attempts arrive at once, at most `max` are ever checked per window, and
// honest traffic never uses up the budget (only attempts still in flight count against it).
//
// An attempt that finds the budget taken by attempts still in flight (a burst of honest logins
// behind one NAT, or of one account) waits for them rather than being refused: it polls for a slot
// for up to LOGIN_WAIT_MS, and only then answers 429. The limit still holds — no more than `max`
// are ever counted at once — and failures, which stay counted, still refuse everything once they
// fill the budget (after the wait). At most MAX_WAITERS attempts wait at a time per replica.
//
// Client authentication is counted differently: its check is a constant-time comparison of a
// 256-bit generated secret's digest, or a signature — no cheaper to count than to do, and not
// guessable however many run at once — while a busy service legitimately has dozens of token
// requests in flight. Counting those in-flight successes refused honest traffic (50 concurrent
// client_credentials requests of one client: 429s). So a client authentication is refused when the
// failures already reached the limit, and counted only when it fails: concurrent wrong secrets can
// pass the limit by at most the number in flight at that moment, then the addresses that failed wait.
//
// The budget of an account or a client refuses only the addresses that have failed against it
// (or have an attempt of theirs in flight), never the owner's credential from an address that has
// not: a stranger who knows a client_id or an email could otherwise lock it out for the window
// (OWASP Authentication Cheat Sheet: lock out the attacker, not the owner). Each attempt is also
// counted per (address, subject); past the subject's budget an address with no count there may
// still try, and its failure refuses it in turn. The per-address limits are unchanged.
//
// IPv6 clients are counted by /64 (one host usually owns the whole prefix). Per replica, the
// counters live in a bounded table that never evicts a live counter: past MAX_EXACT_KEYS, new keys
// are counted in a fixed-size count-min sketch, which can only over-count, so junk keys can make
// the limit stricter for newcomers but never reset a victim's counter. With REDIS_URL the counters
// are shared by every replica (one Lua script does the counting); if Redis cannot be reached, the
// replica's own counters take over.
import crypto from 'node:crypto';
import net from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../../core/config.js';
import { TooManyFailures } from '../../core/errors.js';
import { MemoryCounters, type CounterStore, type Limited } from './failure-counters.js';
export { MAX_EXACT_KEYS, MemoryCounters } from './failure-counters.js';
import { PEEK_SCRIPT, RELEASE_SCRIPT, RedisCounters, TAKE_SCRIPT, type RedisWithScripts } from './failure-limits-redis.js';

/** How long a login waits for a slot taken by attempts in flight before it is refused. */
export const LOGIN_WAIT_MS = 10_000;
const MAX_WAITERS = 1000;
/** Longer subjects (client ids from a Basic header can be kilobytes) are counted by digest. */
const MAX_KEY_SUBJECT = 64;

export interface Attempt {
  /** The attempt succeeded, or ended before it could be judged: it no longer counts. Never throws. */
  uncount(): Promise<void>;
}

export interface FailureLimit {
  /**
   * Count an attempt against the IP and the subject before it is checked. Throws TooManyFailures
   * (and counts nothing) when either has used up its failures in this window. A failed attempt
   * simply stays counted.
   */
  begin(req: FastifyRequest, subject: string): Promise<Attempt>;
  /**
   * Refuse (TooManyFailures) when the IP or the subject has used up its failures in this window;
   * otherwise let the check run and count it only if it fails (`failed`, never throws).
   */
  gate(req: FastifyRequest, subject: string): Promise<{ failed(): Promise<void> }>;
}

export interface FailureLimits {
  login: FailureLimit;
  clientAuth: FailureLimit;
  /** Invalid DPoP proofs per address (issue 23, finding 7). */
  dpopProof: AddressLimit;
}

export interface AddressLimit {
  /**
   * Refuse (TooManyFailures) when the address has used up its failures in this window; otherwise
   * let the check run and count it only if it fails (`failed`, never throws).
   */
  gate(req: FastifyRequest): Promise<{ failed(): Promise<void> }>;
}


/** The key of a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64 prefix. */
export function addressKey(ip: string): string {
  if (!net.isIPv6(ip)) return ip;
  const addr = ip.split('%')[0]!;
  const hextets = (s: string): string[] =>
    s === ''
      ? []
      : s.split(':').flatMap((p) => {
          if (!p.includes('.')) return [p];
          const [a, b, c, d] = p.split('.').map(Number) as [number, number, number, number];
          return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
        });
  const gap = addr.indexOf('::');
  const left = hextets(gap < 0 ? addr : addr.slice(0, gap));
  const right = gap < 0 ? [] : hextets(addr.slice(gap + 2));
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right].map((h) => parseInt(h, 16));
  if (all.slice(0, 5).every((h) => h === 0) && all[5] === 0xffff) return `${all[6]! >> 8}.${all[6]! & 255}.${all[7]! >> 8}.${all[7]! & 255}`;
  return `${all.slice(0, 4).map((h) => h.toString(16)).join(':')}::/64`;
}

// Redis: the same rule in one script, so that replicas share the counters and concurrent attempts
// on any of them can never pass the limit. KEYS are the counters, ARGV[1] the window in ms, then
// per key its max and the index of the key it binds only with (0: none). Returns {1} when counted,
// {0, ms-until-reset} when refused (nothing counted).
export async function registerFailureLimits(app: FastifyInstance, config: Config, now: () => number = Date.now): Promise<FailureLimits> {
  const windowMs = config.rateLimitWindowSeconds * 1000;
  const memory = new MemoryCounters(windowMs);
  let store: CounterStore = memory;
  if (config.redisUrl) {
    const { Redis } = await import('ioredis');
    const redis = new Redis(config.redisUrl, { connectTimeout: 2000, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false }) as RedisWithScripts;
    redis.defineCommand('latchkeyTakeFailures', { lua: TAKE_SCRIPT });
    redis.defineCommand('latchkeyReleaseFailures', { lua: RELEASE_SCRIPT });
    redis.defineCommand('latchkeyPeekFailures', { lua: PEEK_SCRIPT });
    const warn = (err: Error) => app.log.warn({ err: err.message }, 'redis error (failure limits fall back to this replica’s counters)');
    redis.on('error', warn);
    app.addHook('onClose', async () => {
      redis.disconnect();
    });
    // start counting in Redis from the first request when it is reachable (commands sent while it
    // connects would fail over to this replica's counters)
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        redis.off('ready', done);
        redis.off('error', done);
        resolve();
      };
      const timer = setTimeout(done, 2000);
      redis.once('ready', done);
      redis.once('error', done);
    });
    // deployments (issuers) sharing one Redis keep their counters apart
    store = new RedisCounters(redis, `latchkey-fl:${config.issuer}:`, windowMs, memory, warn);
  }

  const subjectKey = (subject: string) => {
    const s = subject.toLowerCase();
    return s.length <= MAX_KEY_SUBJECT ? s : `#${crypto.createHash('sha256').update(s).digest('base64url')}`;
  };
  let waiters = 0;
  const pair = (name: string, perSubject: number, perIp: number, waitMs = 0): FailureLimit => {
    // the subject's budget refuses only the addresses that have failed against it (or are in
    // flight): a stranger's failures never refuse the owner's credential from elsewhere
    const keys = (req: FastifyRequest, subject: string): Limited[] => [
      { key: `${name}:ip:${addressKey(req.ip)}`, max: perIp },
      { key: `${name}:s:${subjectKey(subject)}`, max: perSubject, onlyWith: 2 },
      { key: `${name}:p:${addressKey(req.ip)}:${subjectKey(subject)}`, max: Number.MAX_SAFE_INTEGER },
    ];
    return {
      async begin(req, subject) {
        const k = keys(req, subject);
        // real time for the wait (the window's clock may be a test's frozen one)
        const deadline = Date.now() + waitMs;
        for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
          const r = await store.take(k, now());
          if (r.ok) return { uncount: r.release };
          if (Date.now() + delay > deadline || waiters >= MAX_WAITERS) throw new TooManyFailures('too many failed attempts; try again later', Math.ceil(r.retryAfterMs / 1000));
          waiters++;
          await new Promise((resolve) => setTimeout(resolve, delay));
          waiters--;
        }
      },
      async gate(req, subject) {
        const k = keys(req, subject);
        const r = await store.peek(k, now());
        if (!r.ok) throw new TooManyFailures('too many failed attempts; try again later', Math.ceil(r.retryAfterMs / 1000));
        return {
          async failed() {
            // counted unless a key is already at its max (then it is refused next time anyway)
            await store.take(k, now()).catch(() => undefined);
          },
        };
      },
    };
  };

  return {
    login: pair('login', config.loginFailuresPerAccount, config.loginFailuresPerIp, LOGIN_WAIT_MS),
    clientAuth: pair('client-auth', config.clientAuthFailuresPerClient, config.clientAuthFailuresPerIp),
    dpopProof: {
      // a proof is checked before the client authenticates: an address refused for its client
      // authentications is refused before its proof is looked at, and its invalid proofs are
      // counted on their own, against the same per-address limit
      async gate(req) {
        const ip = addressKey(req.ip);
        const own = { key: `dpop-proof:ip:${ip}`, max: config.clientAuthFailuresPerIp };
        const r = await store.peek([own, { key: `client-auth:ip:${ip}`, max: config.clientAuthFailuresPerIp }], now());
        if (!r.ok) throw new TooManyFailures('too many failed attempts; try again later', Math.ceil(r.retryAfterMs / 1000));
        return {
          async failed() {
            await store.take([own], now()).catch(() => undefined);
          },
        };
      },
    },
  };
}

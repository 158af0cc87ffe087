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

/** Exact counters kept per replica (about 150 bytes each) before new keys go to the sketch. */
export const MAX_EXACT_KEYS = 100_000;
/** How long a login waits for a slot taken by attempts in flight before it is refused. */
export const LOGIN_WAIT_MS = 10_000;
const MAX_WAITERS = 1000;
const SKETCH_DEPTH = 4;
const SKETCH_WIDTH = 1 << 16;
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

interface Limited {
  key: string;
  max: number;
  /** The index of another key in the same list: this one's max refuses only while that one counts at least one. */
  onlyWith?: number;
}

/** The counting step: all keys or none. */
interface CounterStore {
  /** Count one on every key unless one is at its max; then the milliseconds until it resets. */
  take(keys: Limited[], now: number): Promise<{ ok: true; release: () => Promise<void> } | { ok: false; retryAfterMs: number }>;
  /** Whether every key is below its max (nothing counted); else the milliseconds until it resets. */
  peek(keys: Limited[], now: number): Promise<{ ok: true } | { ok: false; retryAfterMs: number }>;
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

interface Entry {
  count: number;
  resetAt: number;
}

/**
 * Per-replica counters in fixed windows. At most `maxKeys` exact counters; a live one is never
 * evicted. Expired ones are dropped from the front of the table (a Map keeps insertion order, and
 * entries are created in time order), so reclaiming costs only what expired. When the table is
 * full, new keys are counted in a count-min sketch of fixed size, cleared at the end of each window
 * (it only over-counts: a collision may refuse a newcomer early, never admit one more).
 */
export class MemoryCounters implements CounterStore {
  private readonly entries = new Map<string, Entry>();
  private readonly sketch = new Uint32Array(SKETCH_DEPTH * SKETCH_WIDTH);
  private sketchResetAt = 0;
  private sketchGeneration = 0;
  private readonly seed = crypto.randomBytes(16);

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = MAX_EXACT_KEYS,
  ) {}

  /** Exact counters held (for tests and the README's bound). */
  get size(): number {
    return this.entries.size;
  }

  private reclaim(now: number): void {
    for (const [key, e] of this.entries) {
      if (e.resetAt > now) break;
      this.entries.delete(key);
    }
    if (now >= this.sketchResetAt) {
      this.sketch.fill(0);
      this.sketchResetAt = now + this.windowMs;
      this.sketchGeneration++;
    }
  }

  private cells(key: string): number[] {
    const h = crypto.createHmac('sha256', this.seed).update(key).digest();
    return Array.from({ length: SKETCH_DEPTH }, (_, row) => row * SKETCH_WIDTH + (h.readUInt32BE(row * 4) % SKETCH_WIDTH));
  }

  async take(keys: Limited[], now: number) {
    return this.takeNow(keys, now);
  }

  async peek(keys: Limited[], now: number) {
    return this.peekNow(keys, now);
  }

  /** A take undone at once (synchronously: nothing else runs in between). */
  peekNow(keys: Limited[], now: number): { ok: true } | { ok: false; retryAfterMs: number } {
    const r = this.takeNow(keys, now);
    if (!r.ok) return r;
    void r.release();
    return { ok: true };
  }

  /** Synchronous, hence atomic within this process. */
  takeNow(keys: Limited[], now: number): { ok: true; release: () => Promise<void> } | { ok: false; retryAfterMs: number } {
    this.reclaim(now);
    const plan = keys.map(({ key, max }) => {
      const e = this.entries.get(key);
      if (e && e.resetAt > now) return { key, max, entry: e, count: e.count, resetAt: e.resetAt };
      if (e || this.entries.size < this.maxKeys) return { key, max, entry: undefined, count: 0, resetAt: now + this.windowMs };
      const cells = this.cells(key);
      return { key, max, cells, count: Math.min(...cells.map((c) => this.sketch[c]!)), resetAt: this.sketchResetAt };
    });
    const full = plan.find((p, i) => p.count >= p.max && (keys[i]!.onlyWith === undefined || plan[keys[i]!.onlyWith!]!.count >= 1));
    if (full) {
      const other = keys[plan.indexOf(full)]!.onlyWith;
      const resetAt = other === undefined ? full.resetAt : Math.min(full.resetAt, plan[other]!.resetAt);
      return { ok: false as const, retryAfterMs: Math.max(1000, resetAt - now) };
    }
    const undo: Array<() => void> = [];
    for (const p of plan) {
      if (p.cells) {
        for (const c of p.cells) this.sketch[c]!++;
        const generation = this.sketchGeneration;
        const cells = p.cells;
        undo.push(() => {
          if (generation === this.sketchGeneration) for (const c of cells) if (this.sketch[c]! > 0) this.sketch[c]!--;
        });
        continue;
      }
      let entry = p.entry;
      if (!entry) {
        // a fresh window: re-insert at the back, keeping the table in time order
        this.entries.delete(p.key);
        entry = { count: 0, resetAt: p.resetAt };
        this.entries.set(p.key, entry);
      }
      entry.count++;
      const counted = entry;
      const key = p.key;
      undo.push(() => {
        if (this.entries.get(key) !== counted) return;
        counted.count--;
        if (counted.count <= 0) this.entries.delete(key);
      });
    }
    return {
      ok: true as const,
      release: async () => {
        for (const u of undo) u();
      },
    };
  }
}

// Redis: the same rule in one script, so that replicas share the counters and concurrent attempts
// on any of them can never pass the limit. KEYS are the counters, ARGV[1] the window in ms, then
// per key its max and the index of the key it binds only with (0: none). Returns {1} when counted,
// {0, ms-until-reset} when refused (nothing counted).
const REFUSAL = `
local function ttl(key, fix)
  local t = redis.call('PTTL', key)
  if t < 0 then
    if fix then redis.call('PEXPIRE', key, ARGV[1]) end
    t = tonumber(ARGV[1])
  end
  return t
end
local function refusal(fix)
  for i = 1, #KEYS do
    if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[2 * i]) then
      local w = tonumber(ARGV[2 * i + 1])
      if w == 0 then return ttl(KEYS[i], fix) end
      if tonumber(redis.call('GET', KEYS[w]) or '0') >= 1 then return math.min(ttl(KEYS[i], fix), ttl(KEYS[w], fix)) end
    end
  end
  return nil
end`;
const TAKE_SCRIPT = `${REFUSAL}
local refused = refusal(true)
if refused then return {0, refused} end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 or redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return {1, 0}`;
// The same refusal rule as TAKE_SCRIPT, counting nothing.
const PEEK_SCRIPT = `${REFUSAL}
local refused = refusal(false)
if refused then return {0, refused} end
return {1, 0}`;
// Uncount only while the window that counted it lives (never create a key without expiry).
const RELEASE_SCRIPT = `
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 1`;

type RedisWithScripts = import('ioredis').Redis & {
  latchkeyTakeFailures(...args: Array<string | number>): Promise<[number, number]>;
  latchkeyReleaseFailures(...args: Array<string | number>): Promise<number>;
  latchkeyPeekFailures(...args: Array<string | number>): Promise<[number, number]>;
};

/** Per key: its max, and the 1-based index of the key it binds only with (0: none). */
function limitArgs(keys: Limited[]): number[] {
  return keys.flatMap((k) => [k.max, k.onlyWith === undefined ? 0 : k.onlyWith + 1]);
}

class RedisCounters implements CounterStore {
  constructor(
    private readonly redis: RedisWithScripts,
    private readonly prefix: string,
    private readonly windowMs: number,
    private readonly fallback: MemoryCounters,
    private readonly onError: (err: Error) => void,
  ) {}

  async peek(keys: Limited[], now: number) {
    const names = keys.map((k) => this.prefix + k.key);
    let answer: [number, number];
    try {
      answer = await this.redis.latchkeyPeekFailures(names.length, ...names, this.windowMs, ...limitArgs(keys));
    } catch (err) {
      this.onError(err as Error);
      return this.fallback.peekNow(keys, now);
    }
    if (Number(answer[0]) !== 1) return { ok: false as const, retryAfterMs: Math.max(1000, Number(answer[1])) };
    return { ok: true as const };
  }

  async take(keys: Limited[], now: number) {
    const names = keys.map((k) => this.prefix + k.key);
    let answer: [number, number];
    try {
      answer = await this.redis.latchkeyTakeFailures(names.length, ...names, this.windowMs, ...limitArgs(keys));
    } catch (err) {
      // Redis unreachable: this replica's own counters, rather than no limit at all
      this.onError(err as Error);
      return this.fallback.takeNow(keys, now);
    }
    if (Number(answer[0]) !== 1) return { ok: false as const, retryAfterMs: Math.max(1000, Number(answer[1])) };
    return {
      ok: true as const,
      release: async () => {
        try {
          await this.redis.latchkeyReleaseFailures(names.length, ...names);
        } catch (err) {
          this.onError(err as Error);
        }
      },
    };
  }
}

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

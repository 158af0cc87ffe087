// Failure-only rate limits (@fastify/rate-limit's programmatic limiter): failed logins per account
// and per IP, failed client authentications per client and per IP. Successful requests are never
// counted, so honest traffic is never throttled. Per replica by default; shared through Redis
// when REDIS_URL is set.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { Config } from '../../config.js';
import { TooManyFailures } from '../../errors.js';

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

export interface FailureLimit {
  /** Throws TooManyFailures (429 + Retry-After) when any of the keys has used up its failures. */
  check(req: FastifyRequest, subject: string): Promise<void>;
  /** Count one failure against the IP and the subject. */
  fail(req: FastifyRequest, subject: string): Promise<void>;
}

const SUBJECT = Symbol('failure-limit-subject');
type WithSubject = FastifyRequest & { [SUBJECT]?: string };

export interface FailureLimits {
  login: FailureLimit;
  clientAuth: FailureLimit;
}

export async function registerFailureLimits(app: FastifyInstance, config: Config): Promise<FailureLimits> {
  let redis: import('ioredis').Redis | undefined;
  if (config.redisUrl) {
    const { Redis } = await import('ioredis');
    redis = new Redis(config.redisUrl, { connectTimeout: 2000, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    redis.on('error', (err: Error) => app.log.warn({ err: err.message }, 'redis error (rate limits fall back to allowing)'));
    app.addHook('onClose', async () => {
      redis?.disconnect();
    });
  }
  await app.register(rateLimit, {
    global: false,
    ...(redis ? { redis, nameSpace: 'latchkey-rl:' } : {}),
    skipOnError: true,
  });

  const windowMs = config.rateLimitWindowSeconds * 1000;
  const make = (name: string, max: number, bySubject: boolean): Limiter =>
    app.createRateLimit({
      max,
      timeWindow: windowMs,
      keyGenerator: (req) => (bySubject ? `${name}:s:${(req as WithSubject)[SUBJECT] ?? ''}` : `${name}:ip:${req.ip}`),
    });

  const pair = (name: string, perSubject: number, perIp: number): FailureLimit => {
    const subjectLimiter = make(name, perSubject, true);
    const ipLimiter = make(name, perIp, false);
    // Without Redis the counters live in this process and only fail() fills them: while this
    // replica has recorded no failure within the window, no key can be over its limit, and the
    // check (two store lookups on every token request) is skipped.
    let lastFailureAt = -Infinity;
    return {
      async check(req, subject) {
        if (!redis && Date.now() - lastFailureAt > windowMs) return;
        (req as WithSubject)[SUBJECT] = subject.toLowerCase();
        for (const limiter of [ipLimiter, subjectLimiter]) {
          const s = await limiter(req, { increment: false });
          if (!s.isAllowed && s.remaining === 0 && s.ttl > 0) throw new TooManyFailures('too many failed attempts; try again later', Math.max(1, s.ttlInSeconds));
        }
      },
      async fail(req, subject) {
        lastFailureAt = Date.now();
        (req as WithSubject)[SUBJECT] = subject.toLowerCase();
        await ipLimiter(req);
        await subjectLimiter(req);
      },
    };
  };

  return {
    login: pair('login', config.loginFailuresPerAccount, config.loginFailuresPerIp),
    clientAuth: pair('client-auth', config.clientAuthFailuresPerClient, config.clientAuthFailuresPerIp),
  };
}

// One typed configuration, read from the environment once at boot and validated.
// A wrong value stops the start with one line naming the variable (ConfigError).
import path from 'node:path';

export type SigningAlg = 'ES256' | 'EdDSA' | 'RS256' | 'PS256';
export const SUPPORTED_ALGS: readonly SigningAlg[] = ['ES256', 'EdDSA', 'RS256', 'PS256'];

export interface Config {
  port: number;
  host: string;
  issuer: string;
  issuerIsHttps: boolean;
  databaseUrl: string | undefined;
  dataDir: string;
  trustProxy: boolean | string | number;
  kek: string | undefined;
  kekFile: string | undefined;
  logLevel: string;
  signingAlg: SigningAlg;
  /** Algorithms for which a key is kept (the default plus RS256, mandatory for ID tokens). */
  enabledAlgs: SigningAlg[];
  accessTokenTtl: number;
  idTokenTtl: number;
  codeTtl: number;
  interactionTtl: number;
  sessionIdleTtl: number;
  sessionAbsoluteTtl: number;
  refreshIdleTtl: number;
  refreshAbsoluteTtl: number;
  refreshReuseGraceSeconds: number;
  clockLeewaySeconds: number;
  /** STATUS_LIST_TTL: seconds a resource server may cache a status list. */
  statusListTtl: number;
  jwksMaxAge: number;
  keyRotationDays: number;
  /** Added to jwksMaxAge: how long a `next` key is published before it may sign (replica lag + clock skew). */
  keyPublishMarginSeconds: number;
  /** How often every replica runs key maintenance and reloads its keystore (bounds a lost NOTIFY). */
  keyPollSeconds: number;
  pkceRequired: boolean;
  redisUrl: string | undefined;
  loginFailuresPerAccount: number;
  loginFailuresPerIp: number;
  clientAuthFailuresPerClient: number;
  clientAuthFailuresPerIp: number;
  rateLimitWindowSeconds: number;
  passwordHashConcurrency: number;
  passwordHashQueue: number;
  bodyLimit: number;
  pgPoolSize: number;
  /** Hot statements as named prepared statements (off behind a pooler that cannot keep them). */
  pgPreparedStatements: boolean;
  pruneIntervalSeconds: number;
  /** Back-Channel Logout: how long an undeliverable notice is retried before it is marked failed. */
  backchannelRetryHours: number;
  /** Back-Channel Logout: deliveries in flight at once on one replica. */
  backchannelConcurrency: number;
  /** Back-Channel Logout: the safety-net poll of the outbox (a NOTIFY wakes delivery at once). */
  backchannelPollSeconds: number;
  /** BACKCHANNEL_ALLOWED_HOSTS: hosts (`host` or `host:port`) a back-channel logout URI may name although they are not public. */
  backchannelAllowedHosts: string[];
  /** How long the stateless paths answer from memory while the database is unreachable (0: never). */
  dbOutageGraceSeconds: number;
  /** Audit events are kept this many days, then pruned in batches (src/store/pruning.ts). */
  auditRetentionDays: number;
  /** The Prometheus listener (`GET /metrics`): off when undefined; 0 picks a free port. */
  metricsPort: number | undefined;
  metricsHost: string;
  /** Log lines as JSON or pretty; undefined: pretty when stdout is a terminal. */
  logFormat: 'json' | 'pretty' | undefined;
  /** RFC 9449 §8: DPoP proofs at /token and /par must carry a server nonce (DPOP_NONCE, default on). */
  dpopNonce: boolean;
  /** How long one server nonce window lasts (a nonce is accepted for about two of them). */
  dpopNonceSeconds: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got ${JSON.stringify(raw)}`);
}

export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]' || hostname === '::1';
}

function parseAllowedHosts(raw: string | undefined): string[] {
  const hosts: string[] = [];
  for (const part of (raw ?? '').split(',')) {
    const p = part.trim().toLowerCase();
    if (!p) continue;
    const m = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(p);
    let host: string | undefined;
    try {
      host = m ? new URL(`http://${m[1]}`).hostname : undefined;
    } catch {
      host = undefined;
    }
    if (!m || !host || (m[2] !== undefined && Number(m[2]) > 65535)) {
      throw new ConfigError('BACKCHANNEL_ALLOWED_HOSTS', `must be a comma-separated list of host or host:port (IPv6 in brackets), got ${JSON.stringify(part.trim())}`);
    }
    hosts.push(m[2] !== undefined ? `${host}:${Number(m[2])}` : host);
  }
  return hosts;
}

function parseTrustProxy(raw: string | undefined): boolean | string | number {
  if (raw === undefined || raw === '' || /^(0|false|no|off|none)$/i.test(raw)) return false;
  if (/^(true|yes|on)$/i.test(raw)) return true;
  if (/^\d+$/.test(raw)) return Number(raw); // number of hops to trust
  for (const part of raw.split(',')) {
    const p = part.trim();
    if (!/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(p) && !['loopback', 'linklocal', 'uniquelocal'].includes(p)) {
      throw new ConfigError('TRUST_PROXY', `must be a hop count, "true", or a comma-separated list of IPs/CIDRs, got ${JSON.stringify(raw)}`);
    }
  }
  return raw;
}

export function loadConfig(env: Env = process.env): Config {
  const port = int(env, 'PORT', 3000, 0, 65535);
  const host = env.HOST?.trim() || '127.0.0.1';

  const issuerRaw = (env.ISSUER?.trim() || `http://localhost:${port}`).replace(/\/+$/, '');
  let issuerUrl: URL;
  try {
    issuerUrl = new URL(issuerRaw);
  } catch {
    throw new ConfigError('ISSUER', `must be an absolute URL, got ${JSON.stringify(issuerRaw)}`);
  }
  if (issuerUrl.search || issuerUrl.hash) throw new ConfigError('ISSUER', 'must not have a query or fragment');
  if (issuerUrl.protocol !== 'https:') {
    if (!(issuerUrl.protocol === 'http:' && isLoopbackHost(issuerUrl.hostname))) {
      throw new ConfigError('ISSUER', 'must be https unless the host is localhost or 127.0.0.1');
    }
  }

  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl && databaseUrl !== 'memory:' && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must be unset (embedded), "memory:", or a postgres:// URL');
  }

  const signingAlg = (env.SIGNING_ALG?.trim() || 'ES256') as SigningAlg;
  if (!SUPPORTED_ALGS.includes(signingAlg)) {
    throw new ConfigError('SIGNING_ALG', `must be one of ${SUPPORTED_ALGS.join(', ')}, got ${JSON.stringify(signingAlg)}`);
  }
  const enabledAlgs = [...new Set<SigningAlg>([signingAlg, 'RS256'])];

  const kek = env.LATCHKEY_KEK?.trim() || undefined;
  if (kek !== undefined) {
    const bytes = Buffer.from(kek, 'base64');
    if (bytes.length !== 32) throw new ConfigError('LATCHKEY_KEK', 'must be base64 of exactly 32 bytes (run `latchkey kek generate`)');
  }
  const logLevel = env.LOG_LEVEL?.trim() || 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of fatal, error, warn, info, debug, trace, silent`);
  }
  const logFormat = env.LOG_FORMAT?.trim() || undefined;
  if (logFormat !== undefined && logFormat !== 'json' && logFormat !== 'pretty') throw new ConfigError('LOG_FORMAT', 'must be json or pretty');
  const metricsOff = env.METRICS_PORT === undefined || /^(|off|false|no)$/i.test(env.METRICS_PORT.trim());
  const metricsPort = metricsOff ? undefined : int(env, 'METRICS_PORT', 0, 0, 65535);
  const redisUrl = env.REDIS_URL?.trim() || undefined;
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) throw new ConfigError('REDIS_URL', 'must be a redis:// URL');

  const day = 86400;
  const keyTiming = { margin: int(env, 'KEY_PUBLISH_MARGIN_SECONDS', 60, 0, day), poll: int(env, 'KEY_POLL_SECONDS', 30, 1, 3600) };
  // a replica that missed the NOTIFY sees a new key only at its next poll: the margin must cover that
  if (keyTiming.margin < keyTiming.poll) throw new ConfigError('KEY_PUBLISH_MARGIN_SECONDS', `must be at least KEY_POLL_SECONDS (${keyTiming.poll})`);
  return {
    port,
    host,
    issuer: issuerUrl.href.replace(/\/+$/, ''),
    issuerIsHttps: issuerUrl.protocol === 'https:',
    databaseUrl,
    dataDir: path.resolve(env.DATA_DIR?.trim() || './data'),
    trustProxy: parseTrustProxy(env.TRUST_PROXY?.trim()),
    kek,
    kekFile: env.LATCHKEY_KEK_FILE?.trim() || undefined,
    logLevel,
    signingAlg,
    enabledAlgs,
    accessTokenTtl: int(env, 'ACCESS_TOKEN_TTL', 900, 30, day),
    idTokenTtl: int(env, 'ID_TOKEN_TTL', 3600, 30, day),
    codeTtl: int(env, 'CODE_TTL', 60, 5, 600),
    interactionTtl: int(env, 'INTERACTION_TTL', 600, 30, 3600),
    sessionIdleTtl: int(env, 'SESSION_IDLE_TTL', day, 60, 90 * day),
    sessionAbsoluteTtl: int(env, 'SESSION_ABSOLUTE_TTL', 14 * day, 60, 365 * day),
    refreshIdleTtl: int(env, 'REFRESH_IDLE_DAYS', 14, 1, 365) * day,
    refreshAbsoluteTtl: int(env, 'REFRESH_ABSOLUTE_DAYS', 30, 1, 3650) * day,
    refreshReuseGraceSeconds: int(env, 'REFRESH_REUSE_GRACE_SECONDS', 0, 0, 300),
    // at most DENYLIST_RETENTION_SECONDS (src/store/refresh-families.ts): entries outlive exp by that
    clockLeewaySeconds: int(env, 'CLOCK_LEEWAY_SECONDS', 30, 0, 300),
    statusListTtl: int(env, 'STATUS_LIST_TTL', 10, 1, 3600),
    jwksMaxAge: int(env, 'JWKS_MAX_AGE', 300, 0, day),
    keyRotationDays: int(env, 'KEY_ROTATION_DAYS', 30, 1, 3650),
    keyPublishMarginSeconds: keyTiming.margin,
    keyPollSeconds: keyTiming.poll,
    pkceRequired: bool(env, 'PKCE_REQUIRED', true),
    redisUrl,
    loginFailuresPerAccount: int(env, 'LOGIN_FAILURES_PER_ACCOUNT', 10, 1),
    loginFailuresPerIp: int(env, 'LOGIN_FAILURES_PER_IP', 50, 1),
    clientAuthFailuresPerClient: int(env, 'CLIENT_AUTH_FAILURES_PER_CLIENT', 20, 1),
    clientAuthFailuresPerIp: int(env, 'CLIENT_AUTH_FAILURES_PER_IP', 100, 1),
    rateLimitWindowSeconds: int(env, 'RATE_LIMIT_WINDOW_SECONDS', 900, 1, day),
    passwordHashConcurrency: int(env, 'PASSWORD_HASH_CONCURRENCY', 2, 1, 64),
    passwordHashQueue: int(env, 'PASSWORD_HASH_QUEUE', 256, 0, 10000),
    bodyLimit: int(env, 'BODY_LIMIT', 64 * 1024, 1024, 10 * 1024 * 1024),
    pgPoolSize: int(env, 'PG_POOL_SIZE', 10, 1, 200),
    pgPreparedStatements: bool(env, 'PG_PREPARED_STATEMENTS', true),
    pruneIntervalSeconds: int(env, 'PRUNE_INTERVAL_SECONDS', 60, 1, day),
    backchannelRetryHours: int(env, 'BACKCHANNEL_RETRY_HOURS', 24, 1, 720),
    backchannelConcurrency: int(env, 'BACKCHANNEL_CONCURRENCY', 16, 1, 256),
    backchannelPollSeconds: int(env, 'BACKCHANNEL_POLL_SECONDS', 5, 1, 3600),
    backchannelAllowedHosts: parseAllowedHosts(env.BACKCHANNEL_ALLOWED_HOSTS),
    dbOutageGraceSeconds: int(env, 'DB_OUTAGE_GRACE_SECONDS', 30, 0, 3600),
    auditRetentionDays: int(env, 'AUDIT_RETENTION_DAYS', 90, 1, 36500),
    metricsPort,
    metricsHost: env.METRICS_HOST?.trim() || '127.0.0.1',
    logFormat,
    dpopNonce: bool(env, 'DPOP_NONCE', true),
    dpopNonceSeconds: int(env, 'DPOP_NONCE_SECONDS', 300, 10, 3600),
  };
}

// Latchkey's Prometheus metrics: one registry per process and the small API every other module
// calls, one line per call site (`metrics.revocations.inc({ cause: 'logout' }, n)`). The protocol
// core may call it: nothing here imports Fastify (the HTTP side is src/metrics/plugin.ts).
//
// Labels are bounded by construction: route patterns (never raw URLs), status classes, grant types
// from the registry, the causes and results typed below. No token, secret, code, user or client id
// is ever a label value.
import client from 'prom-client';

export const METRIC_PREFIX = 'latchkey_';

/** Why a family or token was revoked (the `cause` label). */
export type RevocationCause =
  | 'refresh_reuse'
  | 'code_replay'
  | 'revoked_by_client'
  | 'access_token_revoked'
  | 'logout'
  | 'admin'
  | 'user_disabled'
  | 'password_changed'
  | 'user_deleted'
  | 'logout_everywhere'
  | 'client_revoked'
  | 'client_deleted';

export type LoginResult = 'success' | 'failure' | 'throttled';

/** A value read at scrape time (pool, keys, denylist view …); registered by whoever owns the thing. */
export type Collector = () => void;

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

// seconds; most of our answers take a millisecond or less, a login's argon2 about 25 ms
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class Metrics {
  readonly registry = new client.Registry();
  readonly #collectors = new Set<Collector>();
  readonly #requestChildren = new Map<string, { count: client.Counter.Internal; latency?: client.Histogram.Internal<string> }>();
  #defaultMetrics = false;

  readonly httpRequests = this.counter('http_requests_total', 'HTTP requests answered, by route pattern, method and status class', ['route', 'method', 'status_class']);
  readonly httpRequestDuration = new client.Histogram({
    name: `${METRIC_PREFIX}http_request_duration_seconds`,
    help: 'Time to answer an HTTP request (Fastify routes; snapshot answers of discovery/JWKS are counted in latchkey_http_requests_total only)',
    labelNames: ['route', 'method', 'status_class'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly tokensIssued = this.counter('tokens_issued_total', 'Successful token responses, by grant type', ['grant_type']);
  readonly refreshReuse = this.counter('refresh_reuse_detected_total', 'Consumed refresh tokens presented again past REFRESH_REUSE_GRACE_SECONDS (each revokes its family)', []);
  readonly revocations = this.counter('revocations_total', 'Families (and single access tokens) revoked, by cause', ['cause']);
  readonly logins = this.counter('logins_total', 'Password logins, by result (success, failure, throttled)', ['result']);
  readonly passwordHashRejections = this.counter('password_hash_rejections_total', 'argon2 operations refused because the queue was full (503)', []);
  readonly passwordHashQueue = this.gauge('password_hash_queue_depth', 'argon2 operations waiting for a slot');
  readonly passwordHashRunning = this.gauge('password_hash_running', 'argon2 operations running now');
  readonly denylistEntries = this.gauge('denylist_view_entries', 'Entries in this replica\'s in-memory denylist view');
  readonly denylistStale = this.gauge('denylist_view_stale', '1 while the denylist view may be behind the database (it then answers from the database)');
  readonly keyAge = this.gauge('signing_key_age_seconds', 'Oldest key per algorithm and state: seconds since it entered the state (next: published, active: activated, retired: retired)', ['alg', 'state']);
  readonly keyNextRotation = this.gauge('signing_key_next_rotation_seconds', 'Seconds until the scheduled rotation of the active key may happen (0: due now)', ['alg']);
  readonly listenUp = this.gauge('listen_connection_up', '1 while the LISTEN/NOTIFY connection is up');
  readonly pgPoolConnections = this.gauge('pg_pool_connections', 'Postgres pool connections by state', ['state']);
  readonly pgPoolWaiting = this.gauge('pg_pool_waiting_requests', 'Queries waiting for a pool connection');

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[]): client.Counter<L> {
    return new client.Counter({ name: `${METRIC_PREFIX}${name}`, help, labelNames, registers: [this.registry] });
  }

  private gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): client.Gauge<L> {
    return new client.Gauge({ name: `${METRIC_PREFIX}${name}`, help, labelNames, registers: [this.registry] });
  }

  /** Process metrics (CPU, memory, event loop, GC, handles), prefixed `latchkey_`; once per process. */
  collectProcessMetrics(): void {
    if (this.#defaultMetrics) return;
    this.#defaultMetrics = true;
    client.collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  /** One answered request. `route` is the pattern (`/interaction/:id`), undefined when none matched. */
  observeRequest(method: string, route: string | undefined, statusCode: number, seconds?: number): void {
    const m = KNOWN_METHODS.has(method) ? method : 'OTHER';
    const r = route ?? '(unmatched)';
    const cls = statusCode >= 100 && statusCode < 600 ? `${Math.floor(statusCode / 100)}xx` : 'other';
    const key = `${m} ${cls} ${r}`;
    let child = this.#requestChildren.get(key);
    if (!child) {
      child = { count: this.httpRequests.labels(r, m, cls) };
      // unmatched routes are bounded by the label value above; the map by the routes that exist
      this.#requestChildren.set(key, child);
    }
    child.count.inc();
    if (seconds !== undefined) (child.latency ??= this.httpRequestDuration.labels(r, m, cls)).observe(seconds);
  }

  /** Register a collector run before every scrape; returns its removal. */
  addCollector(fn: Collector): () => void {
    this.#collectors.add(fn);
    return () => {
      this.#collectors.delete(fn);
    };
  }

  /** The Prometheus text exposition. */
  async render(): Promise<string> {
    for (const fn of this.#collectors) {
      try {
        fn();
      } catch {
        // a broken source must not take the whole scrape down; its gauges keep their last values
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** The process's metrics. Other modules import this and call it directly. */
export const metrics = new Metrics();

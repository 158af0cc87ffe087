// The metrics plugin: when METRICS_PORT is set, every answered request is observed (route pattern,
// method, status class, latency), the runtime's state is read at each scrape (pool, LISTEN
// connection, signing keys, denylist view, process), and `GET /metrics` is served on a listener
// of its own (METRICS_HOST, default 127.0.0.1), never on the public port. Off, it adds nothing to
// the request path.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Runtime } from '../../ops/runtime.js';
import { keyTiming } from '../../keys/keystore.js';
import { metrics, type Metrics } from '../../core/metrics.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Where `GET /metrics` listens (undefined when METRICS_PORT is unset or before ready). */
    metricsAddress(): { host: string; port: number } | undefined;
  }
}

export interface MetricsPluginOptions {
  rt: Runtime;
  /** The in-memory denylist view, read at scrape time. */
  denylist?: { readonly size: number };
  /** Whether the view may be behind; by default: while the LISTEN connection is down. */
  denylistStale?: () => boolean;
  metrics?: Metrics;
}

/** Reads the runtime's state into the gauges; run before every scrape. */
export function runtimeCollector(m: Metrics, opts: MetricsPluginOptions): () => void {
  const { rt } = opts;
  const timing = keyTiming(rt.config);
  return () => {
    const stats = rt.dbh.stats?.();
    const listening = stats?.listening ?? true;
    m.listenUp.set(listening ? 1 : 0);
    if (stats?.pool) {
      m.pgPoolConnections.set({ state: 'in_use' }, stats.pool.total - stats.pool.idle);
      m.pgPoolConnections.set({ state: 'idle' }, stats.pool.idle);
      m.pgPoolWaiting.set(stats.pool.waiting);
    } else {
      m.pgPoolConnections.reset();
    }
    if (opts.denylist) {
      m.denylistEntries.set(opts.denylist.size);
      m.denylistStale.set((opts.denylistStale ? opts.denylistStale() : !listening) ? 1 : 0);
    }
    const now = rt.clock.now();
    const oldest = new Map<string, { alg: string; state: string; since: number }>();
    const nextPublished = new Map<string, number>();
    for (const k of rt.keystore.list()) {
      const since = k.state === 'active' ? k.activatedAt : k.state === 'retired' ? k.retiredAt : k.publishedAt;
      if (!since) continue;
      const key = `${k.alg}/${k.state}`;
      const cur = oldest.get(key);
      if (!cur || since.getTime() < cur.since) oldest.set(key, { alg: k.alg, state: k.state, since: since.getTime() });
      if (k.state === 'next') nextPublished.set(k.alg, Math.max(nextPublished.get(k.alg) ?? 0, k.publishedAt.getTime()));
    }
    m.keyAge.reset();
    for (const o of oldest.values()) m.keyAge.set({ alg: o.alg, state: o.state }, Math.max(0, (now - o.since) / 1000));
    m.keyNextRotation.reset();
    for (const alg of rt.config.enabledAlgs) {
      const active = rt.keystore.activeKey(alg);
      if (!active?.activatedAt) continue;
      // src/keys/rotation.ts: due after KEY_ROTATION_DAYS, and only with a next key published long enough
      const due = active.activatedAt.getTime() + timing.rotationSeconds * 1000;
      const published = nextPublished.get(alg);
      const seasoned = published === undefined ? due : published + timing.publishSeconds * 1000;
      m.keyNextRotation.set({ alg }, Math.max(0, (Math.max(due, seasoned) - now) / 1000));
    }
  };
}

async function metricsPlugin(app: FastifyInstance, opts: MetricsPluginOptions): Promise<void> {
  const m = opts.metrics ?? metrics;
  const { config } = opts.rt;
  let address: { host: string; port: number } | undefined;
  app.decorate('metricsAddress', () => address);
  if (config.metricsPort === undefined) return;

  m.collectProcessMetrics();
  const removeCollector = m.addCollector(runtimeCollector(m, opts));
  // a hook on each route, with its pattern in the closure: a global hook would read
  // `req.routeOptions`, which builds an object per request (a third of the metrics' cost measured
  // by bench/metrics-inject.ts). Unmatched paths are counted by the not-found handler.
  app.addHook('onRoute', (route) => {
    const pattern = route.url;
    const observe = (req: FastifyRequest, reply: FastifyReply, done: () => void): void => {
      m.observeRequest(req.method, pattern, reply.statusCode, reply.elapsedTime / 1000);
      done();
    };
    route.onResponse = route.onResponse ? [...(Array.isArray(route.onResponse) ? route.onResponse : [route.onResponse]), observe] : [observe];
  });
  // discovery and JWKS answered from their snapshots never reach Fastify's hooks
  if (app.hasDecorator('staticResponses')) app.staticResponses.onAnswered = (path) => m.observeRequest('GET', path, 200);

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    m.render().then(
      (body) => res.writeHead(200, { 'content-type': m.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
    );
  });
  server.keepAliveTimeout = 5000;
  app.addHook('onReady', async () => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.metricsPort, config.metricsHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address() as AddressInfo;
    address = { host: a.address, port: a.port };
  });
  app.addHook('onClose', async () => {
    removeCollector();
    address = undefined;
    if (!server.listening) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
}

export default fp(metricsPlugin, { name: 'latchkey-metrics', fastify: '5.x' });

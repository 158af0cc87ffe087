// buildApp: the Fastify application as a plugin tree over a Runtime. Tests call it and use
// `app.inject` without opening a port; server.ts listens.
import { OIDC_SCOPES, TOKEN_AUTH_METHODS } from './core/vocabulary.js';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import type { Runtime } from './ops/runtime.js';
import { logFormat, loggerOptions } from './http/logging.js';
import { registerErrorHandling } from './http/plugins/error-handler.js';
import { registerFailureLimits } from './http/plugins/failure-limits.js';
import { registerSecurityHeaders } from './http/plugins/security-headers.js';
import { inputSanity } from './http/plugins/input-sanity.js';
import { registerDiscovery, type Capabilities } from './http/routes/discovery.js';
import { registerJwks } from './http/routes/jwks.js';
import { registerHealth } from './http/routes/health.js';
import { registerAuthorize } from './http/routes/authorize.js';
import { registerInteraction } from './http/routes/interaction.js';
import { registerPar } from './http/routes/par.js';
import { registerToken } from './http/routes/token.js';
import { registerUserinfo, type AccessTokenGuard } from './http/routes/userinfo.js';
import { STYLESHEET } from './http/views/html.js';
import { startKeyMaintenance } from './keys/maintenance.js';
import { idTokenSigningAlgs } from './keys/keystore.js';
import { ClientCache } from './store/client-cache.js';
import { UserCache } from './store/user-cache.js';
import { createServices } from './http/services.js';
import { grants } from './grants/registry.js';
import { CLIENT_ASSERTION_ALGS } from './protocol/client-jwks.js';
import { DenylistView } from './tokens/denylist-view.js';
import { familyDenyKey, statusDenyKey } from './core/channels.js';
import { SessionCache } from './store/session-cache.js';
import { startPruning } from './store/pruning.js';
import { InvalidToken } from './core/errors.js';
import { registerRevocation } from './http/routes/revocation.js';
import { registerIntrospection } from './http/routes/introspection.js';
import { registerEndSession } from './http/routes/end-session.js';
import { registerAdmin } from './http/routes/admin.js';
import { StaticResponses } from './http/static-responses.js';
import { StatusLists, statusIndexOf } from './tokens/status-list.js';
import { registerStatusLists } from './http/routes/status-lists.js';
import { LogoutDelivery } from './backchannel/delivery.js';
import { DbHealth, pingDatabase } from './db/health.js';
import metricsPlugin from './http/plugins/metrics.js';

const QUIET_ROUTES = new Set(['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/.well-known/jwks.json', '/healthz', '/readyz']);

/** One log line per request (on completion, with the redacted request) instead of two. */
class OneLinePerRequest extends LogController {
  // discovery, JWKS and health checks are public, static and fetched constantly: no line for a
  // successful one (errors are still logged)
  override isLogDisabled(req: FastifyRequest): boolean {
    return req.method === 'GET' && QUIET_ROUTES.has(req.url);
  }
  override incomingRequest(): void {}
  /**
   * The line of a request that completed: the app's logger without the redaction pass (set by
   * buildApp). Its fields are whitelisted by construction — the request serializer writes the
   * method, the URL with its query values redacted (redactUrl) and the client address, the reply's
   * only the status code — so there is nothing to redact in it, and pino's redaction (a clone and
   * a path walk of every field, for the wildcard paths) cost about 5% of a token request's CPU.
   * An errored request's line carries the error, and goes through the redacting request logger.
   */
  access!: FastifyBaseLogger;
  override requestCompleted(error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    if (!error && this.isLogDisabled(req) && reply.statusCode < 400) return;
    const responseTime = Math.round(reply.elapsedTime * 10) / 10;
    if (error) reply.log.error({ req, res: reply, err: error, responseTime }, 'request errored');
    else this.access.info({ reqId: req.id, req, res: reply, responseTime }, 'request completed');
  }
}

export interface BuildAppOptions {
  /** Where logs go (tests capture them); stdout by default. */
  logStream?: NodeJS.WritableStream;
  logLevel?: string;
  /** json or pretty; by default LOG_FORMAT, else JSON to a given stream and pretty to a terminal. */
  logFormat?: 'json' | 'pretty';
}

export function capabilities(rt: Runtime): Capabilities {
  return {
    authorization: true,
    token: true,
    userinfo: true,
    revocation: true,
    introspection: true,
    endSession: true,
    statusLists: true,
    backchannelLogout: true,
    par: true,
    idTokenAlgs: idTokenSigningAlgs(rt.config, rt.keystore),
    scopes: [...OIDC_SCOPES],
    claims: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'azp', 'sid', 'at_hash', 'acr', 'amr', 'name', 'email', 'email_verified'],
    grantTypes: [...grants.keys()],
    tokenAuthMethods: [...TOKEN_AUTH_METHODS],
    tokenAuthSigningAlgs: CLIENT_ASSERTION_ALGS,
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    latchkeyOps: import('./http/services.js').Services['ops'];
  }
}

export async function buildApp(rt: Runtime, opts: BuildAppOptions = {}): Promise<FastifyInstance> {
  const { config } = rt;
  const statics = new StaticResponses();
  const logController = new OneLinePerRequest();
  const app = Fastify({
    // static documents are answered before Fastify (src/http/static-responses.ts)
    serverFactory: statics.serverFactory,
    logger: loggerOptions(opts.logLevel ?? config.logLevel, opts.logStream, opts.logFormat ?? (opts.logStream ? (config.logFormat ?? 'json') : logFormat(config.logFormat))),
    trustProxy: typeof config.trustProxy === 'number' ? (_addr: string, hop: number) => hop < (config.trustProxy as number) : config.trustProxy,
    bodyLimit: config.bodyLimit,
    routerOptions: { maxParamLength: 200 },
    logController,
    // a URL Fastify cannot even route (bad percent-encoding …) gets our error model too
    frameworkErrors: (_err, _req, reply: FastifyReply) => {
      reply.code(400).header('cache-control', 'no-store').send({ error: 'invalid_request', error_description: 'the request URL is malformed' });
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });

  // pino's child options: the same level, bindings, serializers and stream; no redaction paths
  logController.access = app.log.child({}, { redact: { paths: [] } });
  // since when this replica's database has been unreachable, and what may answer meanwhile
  const health = new DbHealth({ clock: rt.clock, graceSeconds: config.dbOutageGraceSeconds, probe: () => pingDatabase(rt.db), log: app.log, backend: rt.dbh.kind });
  const unwatch = rt.dbh.watchNotifications((up) => (up ? health.listenBack() : health.listenLost()));
  app.addHook('onClose', async () => {
    unwatch();
    health.stop();
  });
  // past the grace, the static documents go through Fastify too, which refuses them
  statics.available = () => !health.pastGrace();
  registerErrorHandling(app, { config, health });
  // a background read that found the database away has told the outage state; nothing else to log
  const quietOutage = (what: string) => (err: Error) => {
    if (!health.reportFailure(err)) app.log.warn({ err: err.message }, what);
  };
  await app.register(formbody, { bodyLimit: config.bodyLimit });
  await app.register(cookie, { secret: rt.cookieSecret.toString('base64url'), hook: 'onRequest' });
  registerSecurityHeaders(app, { https: config.issuerIsHttps });
  await app.register(inputSanity);
  const limits = await registerFailureLimits(app, config, () => rt.clock.now());

  const clients = new ClientCache(rt.db, rt.clock);
  const stopClients = await clients.start(rt.dbh, health);
  const users = new UserCache(rt.db, rt.clock);
  const stopUsers = await users.start(rt.dbh, health);
  const sessions = new SessionCache(rt.dbh, rt.clock);
  const stopSessions = await sessions.start(rt.dbh, health);
  const stopKeys = await startKeyMaintenance(rt, app.log);
  app.addHook('onClose', async () => {
    await stopKeys();
    await stopClients();
    await stopUsers();
    await stopSessions();
  });
  const denylist = new DenylistView(rt.db, rt.clock, { onError: quietOutage('denylist sync failed'), health });
  await denylist.start(rt.dbh);
  app.addHook('onClose', async () => denylist.stop());
  const statusLists = new StatusLists(rt.db, rt.keystore, rt.clock, {
    issuer: config.issuer,
    alg: config.signingAlg,
    ttl: config.statusListTtl,
    onError: quietOutage('status list refresh failed'),
  });
  await statusLists.start(rt.dbh);
  app.addHook('onClose', async () => statusLists.stop());
  const stopPruning = startPruning(rt.db, () => new Date(rt.clock.now()), config.pruneIntervalSeconds * 1000, quietOutage('pruning failed'), {
    auditRetentionDays: config.auditRetentionDays,
  });
  app.addHook('onClose', async () => stopPruning());
  const delivery = new LogoutDelivery({ dbh: rt.dbh, clock: rt.clock, config, keystore: rt.keystore, clients, log: app.log });
  await delivery.start();
  app.addHook('onClose', async () => delivery.stop());
  const svc = createServices(rt, { clients, users, sessions }, limits, denylist);
  // the local command socket runs admin operations with this app's copies too (src/server.ts)
  app.decorate('latchkeyOps', svc.ops);
  const guard: AccessTokenGuard = {
    async assertNotRevoked(claims) {
      // the token itself, its family, and its status index (a client_credentials sibling of a revoked token)
      const keys = [claims.jti];
      if (claims.fid) keys.push(familyDenyKey(claims.fid));
      const statusIdx = statusIndexOf(config.issuer, claims.status);
      if (statusIdx !== undefined) keys.push(statusDenyKey(statusIdx));
      if (await denylist.isDenied(...keys)) throw new InvalidToken('the access token was revoked');
    },
  };

  statics.attach(app); // before the routes: it collects those with config.staticVersion
  await app.register(metricsPlugin, { rt, denylist, denylistStale: () => denylist.isStale });
  registerHealth(app, rt, health);
  registerJwks(app, rt.keystore, config.jwksMaxAge);
  registerDiscovery(app, config, capabilities(rt));
  registerAuthorize(app, svc);
  registerInteraction(app, svc);
  registerPar(app, svc);
  registerToken(app, svc);
  registerUserinfo(app, svc, guard);
  registerRevocation(app, svc);
  registerIntrospection(app, svc, guard);
  registerEndSession(app, svc);
  registerStatusLists(app, statusLists, config.issuer, config.statusListTtl);
  registerAdmin(app, svc, guard);
  app.get('/assets/latchkey.css', { config: { duringOutage: true } }, async (_req, reply) => reply.header('cache-control', 'public, max-age=86400').type('text/css; charset=utf-8').send(STYLESHEET));
  return app;
}

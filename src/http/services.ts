// What the routes are given: the runtime plus the per-app helpers built on it.
import type { FastifyRequest } from 'fastify';
import { opsContextFor, type Runtime } from '../ops/runtime.js';
import type { LocalCopies, OpsContext } from '../ops/context.js';
import type { Config } from '../core/config.js';
import type { ClientCache } from '../store/client-cache.js';
import type { UserCache } from '../store/user-cache.js';
import type { SessionCache } from '../store/session-cache.js';
import type { FailureLimits } from './plugins/failure-limits.js';
import { cookieNames, type CookieNames } from './browser.js';
import { recordAudit, type AuditEvent } from '../store/audit.js';
import type { DenylistView } from '../tokens/denylist-view.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { DpopNonces } from '../protocol/dpop.js';

export interface Services {
  rt: Runtime;
  /** Admin operations (src/ops/) with this replica's copies: the admin API's, and the local socket's. */
  ops: OpsContext & { insideServer: true };
  config: Config;
  clients: ClientCache;
  /** Users for /userinfo and /introspect (cached, invalidated by NOTIFY on every change). */
  users: UserCache;
  /** Login sessions for /authorize and the interaction pages (cached the same way). */
  sessions: SessionCache;
  limits: FailureLimits;
  cookies: CookieNames;
  /** Record an audit event with the request's client IP (per TRUST_PROXY). Never throws. */
  audit(req: FastifyRequest, e: AuditEvent): Promise<void>;
  now(): Date;
  denylist: DenylistView;
  /** DPoP server nonces (RFC 9449 §8), the same at every replica. */
  dpopNonces: DpopNonces;
}

export function createServices(rt: Runtime, caches: { clients: ClientCache; users: UserCache; sessions: SessionCache }, limits: FailureLimits, denylist: DenylistView): Services {
  // the triggers tell every replica at commit (NOTIFY); this one drops its copies before it answers
  const local: LocalCopies = {
    userChanged(userId) {
      caches.users.invalidate(userId);
      caches.sessions.invalidate();
    },
    clientChanged: (clientId) => caches.clients.invalidate(clientId),
    syncDenylist: () => denylist.sync(),
    reloadKeys: () => rt.keystore.reload(),
  };
  return {
    rt,
    config: rt.config,
    ...caches,
    limits,
    cookies: cookieNames(rt.config),
    async audit(req, e) {
      try {
        await recordAudit(rt.db, new Date(rt.clock.now()), { ip: req.ip, ...e });
      } catch (err) {
        // during an outage the request itself answers 503 and the outage is logged once
        if (!isDatabaseUnavailable(err)) req.log.error({ err: (err as Error).message, type: e.type }, 'audit write failed');
      }
    },
    now: () => new Date(rt.clock.now()),
    denylist,
    dpopNonces: new DpopNonces(rt.dpopNonceSecret, rt.config.dpopNonceSeconds, () => rt.clock.now()),
    ops: opsContextFor(rt, local),
  };
}

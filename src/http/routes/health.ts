// Liveness (/healthz: the process answers) and readiness (/readyz: database reachable, migrations
// applied, a signing key loaded). During a database outage /readyz says `degraded` while the
// stateless paths still answer from memory, with the age of that state (src/db/health.ts), and
// `unavailable` past the grace. Both answer past the outage grace.
import type { FastifyInstance } from 'fastify';
import { pendingMigrations } from '../../db/migrator.js';
import { DatabaseUnavailable } from '../../db/errors.js';
import { pingDatabase, type DbHealth } from '../../db/health.js';
import type { Runtime } from '../../ops/runtime.js';

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new DatabaseUnavailable('the readiness check got no answer', { kind: 'timeout', message: `no answer to SELECT 1 within ${ms} ms` })), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}

export function registerHealth(app: FastifyInstance, rt: Runtime, health: DbHealth): void {
  let migrationsOk = false;
  app.get('/healthz', { config: { duringOutage: true } }, async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'ok' };
  });
  app.get('/readyz', { config: { duringOutage: true } }, async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    const checks: Record<string, 'ok' | 'failing'> = { database: 'ok', migrations: 'ok', signing_key: 'ok' };
    try {
      await withTimeout(pingDatabase(rt.db), 2000);
      health.reportSuccess();
    } catch (err) {
      health.reportFailure(err);
      checks.database = 'failing';
    }
    if (!migrationsOk && checks.database === 'ok') {
      try {
        migrationsOk = (await withTimeout(pendingMigrations(rt.db), 2000)).length === 0;
      } catch {
        migrationsOk = false;
      }
    }
    if (!migrationsOk) checks.migrations = 'failing';
    if (!rt.keystore.hasSigningKey(rt.config.signingAlg) || !rt.keystore.hasSigningKey('RS256')) checks.signing_key = 'failing';
    const ok = Object.values(checks).every((v) => v === 'ok');
    const outage = health.status();
    // degraded: the notifications are down (the database answers), or the database is away and
    // memory still answers for it
    const status = ok ? (outage ? 'degraded' : 'ready') : outage?.serving_from_memory ? 'degraded' : 'unavailable';
    reply.code(ok ? 200 : 503);
    return { status, checks, ...(outage ? { outage } : {}) };
  });
}

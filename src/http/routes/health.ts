// Liveness (/healthz: the process answers) and readiness (/readyz: database reachable, migrations
// applied, a signing key loaded).
import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import { pendingMigrations } from '../../db/migrator.js';
import type { Runtime } from '../../runtime.js';

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
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

export function registerHealth(app: FastifyInstance, rt: Runtime): void {
  let migrationsOk = false;
  app.get('/healthz', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'ok' };
  });
  app.get('/readyz', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    const checks: Record<string, 'ok' | 'failing'> = { database: 'ok', migrations: 'ok', signing_key: 'ok' };
    try {
      await withTimeout(sql`SELECT 1`.execute(rt.db), 2000);
    } catch {
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
    reply.code(ok ? 200 : 503);
    return { status: ok ? 'ready' : 'unavailable', checks };
  });
}

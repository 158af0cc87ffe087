// Replicas of one server for the cache tests: two on Postgres (PGlite is one process's database:
// one replica there), each on its own port under the same issuer, as replicas behind one name are.
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';
import type { Backend } from './backends.js';
import { createTestEnv, type TestEnv } from './runtime.js';

export async function startReplicas(t: Test, backend: Backend): Promise<{ a: TestEnv; envs: TestEnv[]; urls: string[] }> {
  const dbUrl = await backend.create();
  const a = await createTestEnv(dbUrl, { listen: true });
  t.teardown(() => a.close());
  const b = backend.name === 'postgres' ? await createTestEnv(dbUrl, { listen: true, env: { ISSUER: a.config.issuer } }) : undefined;
  if (b) t.teardown(() => b.close());
  const envs = b ? [a, b] : [a];
  return { a, envs, urls: envs.map((e) => `http://127.0.0.1:${(e.app.server.address() as AddressInfo).port}`) };
}

/** Poll until `check` holds (at most 5 s); the clock of every env stays frozen meanwhile. */
export async function eventually(check: () => Promise<boolean>): Promise<boolean> {
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

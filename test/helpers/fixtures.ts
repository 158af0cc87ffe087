// Users and clients created the way the CLI creates them (same command functions).
import type { Runtime } from '../../src/ops/runtime.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { runCommand } from '../../src/cli/registry.js';

export async function cli(rt: Runtime, argv: string[], stdin?: string): Promise<Record<string, unknown>> {
  const r = await runCommand([...argv, '--json'], cliContextFor(rt), stdin);
  if (r.code !== 0) throw new Error(`latchkey ${argv.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

export async function createUser(rt: Runtime, email: string, password = 'correct horse battery', extra: string[] = []): Promise<string> {
  const out = await cli(rt, ['users', 'create', '--email', email, '--password-stdin', ...extra], `${password}\n`);
  return out.id as string;
}

export interface TestClient {
  clientId: string;
  clientSecret?: string;
}

export async function createClient(rt: Runtime, args: string[]): Promise<TestClient> {
  const out = await cli(rt, ['clients', 'create', ...args]);
  return { clientId: out.client_id as string, clientSecret: out.client_secret as string | undefined };
}

// What `npm start` tells a person once the server is ready: where it answers, which database it
// uses, and what to do next (on a fresh database: create a user and a client).
import type { Config } from './core/config.js';
import type { Runtime } from './ops/runtime.js';
import { isEmbedded } from './ops/runtime.js';
import { countRows } from './store/users.js';

/** The database in words, never with its password. */
export function describeDatabase(config: Config): string {
  if (config.databaseUrl === 'memory:') return 'embedded PGlite, in memory (nothing is kept)';
  if (isEmbedded(config)) return `embedded PGlite in ${config.dataDir}`;
  try {
    const u = new URL(config.databaseUrl!);
    return `Postgres at ${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}${u.username ? ` as ${decodeURIComponent(u.username)}` : ''}`;
  } catch {
    return 'Postgres';
  }
}

export interface ReadyFacts {
  users: number;
  clients: number;
  metrics?: { host: string; port: number };
  tracing: boolean;
}

export async function readyFacts(rt: Runtime, metrics: { host: string; port: number } | undefined, tracing: boolean): Promise<ReadyFacts> {
  return { users: await countRows(rt.db, 'users'), clients: await countRows(rt.db, 'clients'), metrics, tracing };
}

function otlpOrigin(): string {
  try {
    return new URL(process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT || '').origin;
  } catch {
    return 'the configured endpoint';
  }
}

/** The next step, as commands to copy. */
export function nextSteps(config: Config, f: ReadyFacts): string[] {
  const steps: string[] = [];
  if (f.users === 0) steps.push(`echo 'a long passphrase' | npx latchkey users create --email you@example.com --password-stdin`);
  if (f.clients === 0) steps.push(`npx latchkey clients create --name "My app" --redirect-uri http://127.0.0.1:8080/callback`);
  if (steps.length === 0) steps.push(`curl ${config.issuer}/.well-known/openid-configuration`);
  return steps;
}

/** The lines printed for people (LOG_FORMAT pretty / a terminal). */
export function readyMessage(config: Config, f: ReadyFacts): string {
  const lines = [
    '',
    `  Latchkey is ready: ${config.issuer}`,
    `  database:  ${describeDatabase(config)}`,
    ...(f.metrics ? [`  metrics:   http://${f.metrics.host.includes(':') ? `[${f.metrics.host}]` : f.metrics.host}:${f.metrics.port}/metrics`] : []),
    ...(f.tracing ? [`  tracing:   OTLP to ${otlpOrigin()}`] : []),
    '',
    f.users === 0 || f.clients === 0 ? '  Next: create a user and a client (in another terminal):' : '  Next: point a relying party at the issuer; discovery:',
    ...nextSteps(config, f).map((s) => `    ${s}`),
    '',
  ];
  return `${lines.join('\n')}\n`;
}

// `npm run bench`: Latchkey (dist/server.js on a fresh Postgres database) side by side with
// node-oidc-provider (bench/peer.ts, in memory), same machine, same run, alternating rounds; then
// password login against Keycloak's published sizing, start-up time, revocation propagation between
// two replicas, resident memory, and (with --large) refresh cost as the tables grow.
// Results: stdout and bench/RESULTS.md. Options: see `usage` below.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { PeerConfig } from './peer.js';
import { discover, exchangeCode, loginSession, NotAvailable, type Endpoints, type Target } from './lib/oauth.js';
import { cpuMs, freePort, installCleanup, pgBackendCpu as backendCpuOf, pgCpuBetween, rssMb, runToCompletion, startChild, stopAll, waitFor200, type Child } from './lib/procs.js';
import { fmt, median, medianOf, type RunResult } from './lib/stats.js';
import { clientCredentialsWorkload, discovery, introspection, jwks, tokenKind, userinfo } from './workloads/stateless.js';
import { authcodeSession, KEYCLOAK_LOGINS_PER_VCPU, passwordLogin, refreshWorkload } from './workloads/stateful.js';
import { loginBurst } from './workloads/login-burst.js';
import { measurePropagation, type PropagationResult } from './workloads/revocation.js';
import { backchannelSection, measureBackchannelLogout, type BackchannelResult } from './workloads/backchannel.js';
import type { Prepared, Workload } from './workloads/types.js';
import { DEFAULTS as SEED_DEFAULTS, seedLarge } from './seed-large.js';
import { DPOP_PEER_NOTES, DPOP_WORKLOAD, dpopSection, dpopWorkload, NONCE_PEER, startNoncePeer } from './dpop.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REDIRECT_URI = 'https://rp.example/cb';
const RESOURCE = 'https://api.example';
const SCOPES = { cc: 'api:read', web: 'openid profile email offline_access api:read', ui: 'openid profile email' };

const usage = `usage: npm run bench -- [--duration 5] [--rounds 3] [--warmup 1] [--only name,…] [--skip name,…]
       [--no-revocation] [--revocations 100] [--large] [--pg postgres://postgres@127.0.0.1:5432] [--db latchkey_bench]
       [--keep-db] [--out bench/RESULTS.md] [--id-token-alg ES256|RS256]`;

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    only: { type: 'string' },
    skip: { type: 'string' },
    'no-revocation': { type: 'boolean', default: false },
    revocations: { type: 'string', default: '100' },
    large: { type: 'boolean', default: false },
    pg: { type: 'string', default: process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432' },
    db: { type: 'string', default: 'latchkey_bench' },
    'keep-db': { type: 'boolean', default: false },
    out: { type: 'string', default: path.join('bench', 'RESULTS.md') },
    // the issue's "the same ES256 algorithm" for both servers' ID tokens too; RS256 is the OIDC
    // default for a client that registers none, and costs about 0.3 ms of CPU per RSA signature here
    'id-token-alg': { type: 'string', default: 'ES256' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const DURATION_MS = Number(args.duration) * 1000;
const ROUNDS = Math.max(1, Math.floor(Number(args.rounds)));
const WARMUP_MS = Number(args.warmup) * 1000;
const REVOCATIONS = Math.max(1, Math.floor(Number(args.revocations)));
if (!(DURATION_MS > 0 && WARMUP_MS >= 0)) throw new Error(usage);
const PG_BASE = args.pg.replace(/\/+$/, '');
if (!/^postgres(ql)?:\/\/([^@/]*@)?(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(PG_BASE)) throw new Error('--pg must be a loopback postgres:// URL without a database');
if (!/^[a-z_][a-z0-9_]*$/.test(args.db)) throw new Error('--db must be a plain lower-case identifier');
const ID_TOKEN_ALG = args['id-token-alg'];
if (ID_TOKEN_ALG !== 'ES256' && ID_TOKEN_ALG !== 'RS256') throw new Error('--id-token-alg must be ES256 or RS256');

const ALL_WORKLOADS = [discovery, jwks, clientCredentialsWorkload, userinfo, introspection, refreshWorkload, authcodeSession, dpopWorkload({ measuredMs: DURATION_MS, warmupMs: WARMUP_MS }), passwordLogin, loginBurst];
/** Issue 14: every compared workload at 20 and 50 connections (password login and the burst have their own). */
const CONNECTION_COUNTS = [20, 50];
const only = args.only?.split(',').map((s) => s.trim());
const skip = args.skip?.split(',').map((s) => s.trim()) ?? [];
for (const n of [...(only ?? []), ...skip]) {
  if (n !== 'none' && !ALL_WORKLOADS.some((w) => w.name === n)) throw new Error(`unknown workload ${n} (known: ${ALL_WORKLOADS.map((w) => w.name).join(', ')}, or none)`);
}
const WORKLOADS = ALL_WORKLOADS.filter((w) => (!only || only.includes(w.name)) && !skip.includes(w.name)).flatMap((w) =>
  w.only ? [w] : CONNECTION_COUNTS.map((connections) => ({ ...w, connections })),
);
const label = (w: Workload) => (w.only ? w.name : `${w.name} @${w.connections}`);

const log = (line: string) => process.stderr.write(`${line}\n`);
let statusListMd = '';

// ───────────────────────────── databases ─────────────────────────────

async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>, db = 'postgres'): Promise<T> {
  const c = new pg.Client({ connectionString: `${PG_BASE}/${db}` });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function recreateDb(name: string): Promise<void> {
  await withAdmin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  });
}

async function dropDb(name: string): Promise<void> {
  await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`));
}

// ───────────────────────────── Latchkey ─────────────────────────────

interface LatchkeyEnv {
  databaseUrl: string;
  kek: string;
}

/** Extra node flags for the Latchkey processes, e.g. BENCH_LATCHKEY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const nodeArgs = (): string[] => (process.env.BENCH_LATCHKEY_NODE_ARGS ?? '').split(' ').filter(Boolean);

/** Latchkey's settings that the bench sets: where it listens and what it connects to, nothing else. */
const DEPLOYMENT_SETTINGS = new Set(['PORT', 'HOST', 'ISSUER', 'DATABASE_URL', 'LATCHKEY_KEK', 'LATCHKEY_KEK_FILE', 'MALLOC_MMAP_THRESHOLD_']);

/**
 * Settings from the bench's own environment that would reach Latchkey and change how it runs
 * (LOG_LEVEL, PG_POOL_SIZE, …): printed in the report as deviations from the defaults.
 */
function inheritedDeviations(): string[] {
  const known = /^(LOG_|PG_|PASSWORD_|SESSION_|ACCESS_|REFRESH_|STATUS_|TRUST_|BODY_|RATE_|DPOP_|LATCHKEY_|DATA_DIR$|NODE_OPTIONS$|UV_THREADPOOL_SIZE$|NODE_ENV$)/;
  return Object.keys(process.env)
    .filter((k) => known.test(k) && !DEPLOYMENT_SETTINGS.has(k))
    .map((k) => `${k}=${k.includes('KEK') || k.includes('SECRET') ? '…' : process.env[k]}`);
}

function latchkeyEnv(e: LatchkeyEnv, port: number, issuer: string): Record<string, string> {
  // issue 14: Latchkey's defaults (LOG_LEVEL=info: one line per request, the pool size, prepared
  // statements as shipped); the bench only says where to listen and which database to use
  const env: Record<string, string> = { PORT: String(port), HOST: '127.0.0.1', ISSUER: issuer, DATABASE_URL: e.databaseUrl, LATCHKEY_KEK: e.kek, LATCHKEY_KEK_FILE: '' };
  // as `npm start` and the Docker image run it (see scripts/start.js)
  env.MALLOC_MMAP_THRESHOLD_ = process.env.MALLOC_MMAP_THRESHOLD_ ?? '131072';
  return env;
}

/** Lines Latchkey processes wrote to stdout (their log), counted by the sink as each one exits. */
const logLines: Promise<number>[] = [];

/** Launches dist/server.js and returns it with the ms from spawn to /readyz 200. */
async function startLatchkey(name: string, e: LatchkeyEnv, port: number, issuer: string): Promise<{ child: Child; readyMs: number }> {
  const t0 = performance.now();
  const child = startChild(name, [...nodeArgs(), path.join(ROOT, 'dist', 'server.js')], latchkeyEnv(e, port, issuer), { cwd: ROOT, logSink: true });
  if (child.stdoutLines) logLines.push(child.stdoutLines);
  const readyMs = await waitFor200(child, `http://127.0.0.1:${port}/readyz`, t0);
  return { child, readyMs };
}

async function cli(e: LatchkeyEnv, argv: string[], stdin?: string): Promise<Record<string, unknown>> {
  // dist/cli.js, not bin/latchkey.js: the build was checked once by `npm run bench`, and a rebuild in the
  // middle of a run must not change the code under test
  const out = await runToCompletion([path.join(ROOT, 'dist', 'cli.js'), ...argv, '--json'], { DATABASE_URL: e.databaseUrl, LATCHKEY_KEK: e.kek, LATCHKEY_KEK_FILE: '', LOG_LEVEL: 'warn' }, ROOT, stdin);
  return JSON.parse(out) as Record<string, unknown>;
}

interface Provisioned {
  user: { id: string; email: string; password: string; name: string };
  clients: Target['clients'];
}

async function provision(e: LatchkeyEnv): Promise<Provisioned> {
  const password = crypto.randomBytes(18).toString('base64url');
  const user = await cli(e, ['users', 'create', '--email', 'bench@example.com', '--name', 'Bench User', '--email-verified', '--password-stdin'], `${password}\n`);
  const mk = async (name: string, extra: string[]) => {
    const c = await cli(e, ['clients', 'create', '--name', name, ...extra]);
    return { id: String(c.client_id), secret: String(c.client_secret) };
  };
  const webArgs = ['--redirect-uri', REDIRECT_URI, '--grant-types', 'authorization_code,refresh_token', '--scopes', SCOPES.web, '--audiences', RESOURCE, '--first-party', '--id-token-alg', ID_TOKEN_ALG];
  const clients = {
    cc: await mk('bench-cc', ['--grant-types', 'client_credentials', '--scopes', SCOPES.cc, '--audiences', RESOURCE]),
    web: await mk('bench-web', webArgs),
    ui: await mk('bench-ui', webArgs),
  };
  return { user: { id: String(user.id), email: String(user.email), password, name: 'Bench User' }, clients };
}

let idTokenAlgSource = 'seen in a code exchange';

/** The alg of the ID token Latchkey issues from a code exchange; RS256 (the OIDC default) if it cannot tell yet. */
async function latchkeyIdTokenAlg(t: Target): Promise<'ES256' | 'RS256'> {
  try {
    const { first } = await loginSession(t, t.clients.web, t.scopes.web);
    const tok = await exchangeCode(t, t.clients.web, first.code, first.verifier);
    const alg = tok.id_token ? tokenKind(tok.id_token).split(' ')[1] : undefined;
    if (alg === 'ES256' || alg === 'RS256') return alg;
    idTokenAlgSource = `Latchkey's ID token alg ${alg ?? 'absent'}, the peer uses RS256`;
  } catch (err) {
    idTokenAlgSource = `not measurable (${(err as Error).message.slice(0, 80)}), RS256 assumed`;
  }
  return 'RS256';
}

// ───────────────────────────── workloads ─────────────────────────────

type Status = { kind: 'ok'; prepared: Prepared } | { kind: 'na'; reason: string } | { kind: 'error'; reason: string };

interface RawRun extends RunResult {
  /** CPU time of the server process (not Postgres) per request, in ms */
  cpuMsPerRequest?: number;
  /** CPU time of the Postgres backends serving the server's database, per request, in ms */
  pgCpuMsPerRequest?: number;
  /** backends that were there at the start of the run and gone at its end (their CPU is missed) */
  pgBackendsLost?: number;
  connections: number;
  detail?: string;
  workload: string;
  target: string;
  round: number;
  position: number;
  firstError?: string;
}

interface Outcome {
  workload: Workload;
  perTarget: Record<string, { status: 'ok' | 'na' | 'error'; reason?: string; notes: string[]; runs: RawRun[]; median?: RunResult }>;
}

async function prepareOn(w: Workload, t: Target): Promise<Status> {
  try {
    return { kind: 'ok', prepared: await w.prepare(t) };
  } catch (err) {
    if (err instanceof NotAvailable) return { kind: 'na', reason: err.message };
    return { kind: 'error', reason: (err as Error).message };
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ───────────────────────────── Postgres CPU ─────────────────────────────

/** The admin connection (to the `postgres` database, so its own backend is never counted). */
let admin: pg.Client | undefined;

/** CPU ms so far of each client backend connected to `db` (none before the admin connection is up). */
const pgBackendCpu = async (db: string): Promise<Map<number, number>> => (admin ? backendCpuOf(admin, db) : new Map());

/** Workloads that write rows on every request: their tables are vacuumed before each measured run. */
const ROTATION_TABLES = 'refresh_tokens, refresh_families, login_sessions, interactions, audit_events';
const VACUUMED = new Map([
  ['refresh_token', ROTATION_TABLES],
  ['authcode_session', ROTATION_TABLES],
  [DPOP_WORKLOAD, 'dpop_proofs'],
]);

async function runWorkload(w: Workload, targets: Target[]): Promise<Outcome> {
  const against = w.against ?? 'peer';
  const other = against === 'bare' ? 'bare-http' : 'peer';
  const ts = w.only ? targets.filter((t) => w.only!.includes(t.name)) : targets.some((t) => t.name === 'latchkey') ? targets.filter((t) => t.name === 'latchkey' || t.name === other || w.extraTargets?.includes(t.name)) : targets;
  const outcome: Outcome = { workload: w, perTarget: {} };
  const ready: { t: Target; p: Prepared }[] = [];
  for (const t of ts) {
    const s = await prepareOn(w, t);
    outcome.perTarget[t.name] = { status: s.kind, reason: s.kind === 'ok' ? undefined : s.reason, notes: s.kind === 'ok' ? (s.prepared.notes ?? []) : [], runs: [] };
    if (s.kind === 'ok') ready.push({ t, p: s.prepared });
    else log(`  ${label(w)} on ${t.name}: ${s.kind === 'na' ? 'n/a' : 'ERROR'}: ${s.reason}`);
  }
  if (WARMUP_MS > 0) {
    for (const { p } of ready) {
      await p.reset?.(WARMUP_MS);
      await p.run(WARMUP_MS);
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    // alternate who goes first, so drift (thermal, GC, Postgres checkpoints) does not favour one side
    // (with three servers, each goes first in turn)
    const order = ready.map((_, i) => ready[(i + round) % ready.length]);
    for (const [position, { t, p }] of order.entries()) {
      // this machine's Postgres runs with autovacuum off; a default install vacuums a table this busy
      // about once a minute (autovacuum_naptime): do what it would, outside the timed window
      if (t.pgDatabase && VACUUMED.has(w.name)) await withAdmin((c) => c.query(`VACUUM (ANALYZE) ${VACUUMED.get(w.name)}`), t.pgDatabase).catch((err: unknown) => log(`  vacuum: ${(err as Error).message}`));
      await p.reset?.(DURATION_MS);
      await pause(300);
      const pg0 = t.pgDatabase ? await pgBackendCpu(t.pgDatabase) : undefined;
      const cpu0 = cpuMs(t.pid);
      const r = await p.run(DURATION_MS);
      const cpu1 = cpuMs(t.pid);
      const pg1 = t.pgDatabase ? await pgBackendCpu(t.pgDatabase) : undefined;
      const cpuMsPerRequest = cpu0 !== undefined && cpu1 !== undefined && r.requests > 0 ? (cpu1 - cpu0) / r.requests : undefined;
      const pgc = pg0 && pg1 ? pgCpuBetween(pg0, pg1) : undefined;
      const pgCpuMsPerRequest = pgc && r.requests > 0 ? pgc.ms / r.requests : undefined;
      outcome.perTarget[t.name].runs.push({ ...r, cpuMsPerRequest, pgCpuMsPerRequest, pgBackendsLost: pgc?.lost, connections: w.connections, workload: w.name, target: t.name, round: round + 1, position: position + 1 });
      log(
        `  ${label(w).padEnd(22)} round ${round + 1} ${t.name.padEnd(9)} ${fmt(r.rps).padStart(8)}/s  p50 ${fmt(r.p50, 2)} ms  p99 ${fmt(r.p99, 2)} ms  errors ${r.errors}  cpu ${fmt(cpuMsPerRequest, 3)}${pgCpuMsPerRequest !== undefined ? `+pg ${fmt(pgCpuMsPerRequest, 3)}` : ''} ms/req${r.detail ? `  ${r.detail}` : ''}${r.firstError ? ` (${r.firstError.slice(0, 160)})` : ''}`,
      );
    }
  }
  for (const pt of Object.values(outcome.perTarget)) if (pt.runs.length) pt.median = medianOf(pt.runs);
  return outcome;
}

// ───────────────────────────── report ─────────────────────────────

interface Report {
  startedAt: Date;
  finishedAt?: Date;
  command: string;
  machine: string[];
  outcomes: Outcome[];
  startup: { coldMs?: number; warmMs: number[]; replicaBMs?: number; peerMs?: number };
  rss: { latchkey?: number; peer?: number };
  propagation: (PropagationResult | { kind: string; na: string })[];
  backchannel?: BackchannelResult | { na: string };
  large: { status: string; rows?: string; empty?: RunResult; seeded?: RunResult; runs?: RawRun[] };
  peerConfig: string[];
  /** settings inherited from the bench's environment that change how Latchkey runs */
  deviations: string[];
  pgSettings: { synchronousCommit?: string; autovacuum?: string };
  /** stdout lines of every Latchkey process (its log), and the requests of replica A's measured runs */
  logLines?: number;
  requestsServed: number;
  loadEnd?: string;
  distChanged?: string;
}

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? '' : ok ? 'met' : '**missed**';
}

function cell(pt: Outcome['perTarget'][string] | undefined): string[] {
  if (!pt) return ['', '', '', ''];
  if (pt.status !== 'ok') return [pt.status === 'na' ? 'n/a' : 'error', '', '', ''];
  const m = pt.median;
  return [fmt(m?.rps), fmt(m?.p50, 2), fmt(m?.p99, 2), String(m?.errors ?? '')];
}

/** Median over rounds of Latchkey/peer within the same round (runs next to each other in time). */
function pairedRatio(l: RawRun[], p: RawRun[]): number | undefined {
  const ratios = l.flatMap((x) => p.filter((y) => y.round === x.round && y.rps > 0).map((y) => x.rps / y.rps));
  return ratios.length ? median(ratios) : undefined;
}

const TOKEN_WORKLOADS = new Set(['client_credentials', 'refresh_token', 'authcode_session']);

function otherOf(o: Outcome): string {
  return (o.workload.against ?? 'peer') === 'bare' ? 'bare-http' : 'peer';
}

/** The servers Latchkey is compared with in `o`: the usual one, then any extra (the DPoP workload's peer-nonce). */
function othersOf(o: Outcome): string[] {
  return [otherOf(o), ...(o.workload.extraTargets ?? []).filter((n) => o.perTarget[n])];
}

const OTHER_LABEL: Record<string, string> = { peer: 'node-oidc-provider', 'bare-http': 'bare node:http', [NONCE_PEER]: 'node-oidc-provider, DPoP nonces on' };

/** The compared workloads at both connection counts: Latchkey, the other server, the ratio, the targets. */
function summaryTable(r: Report): string {
  const rows = [
    '| workload | conn | Latchkey req/s | p50 ms | p99 ms | errors | compared with | its req/s | p50 ms | p99 ms | errors | ratio | target |',
    '|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const o of r.outcomes) {
    if (o.workload.only) continue;
    for (const other of othersOf(o)) {
      const l = o.perTarget.latchkey;
      const p = o.perTarget[other];
      const ratio = pairedRatio(l?.runs ?? [], p?.runs ?? []);
      const goals: string[] = [];
      if (o.workload.targetRatio !== undefined) goals.push(`≥ ${o.workload.targetRatio}× ${ratio === undefined ? '' : verdict(ratio >= o.workload.targetRatio)}`.trim());
      if (o.workload.targetP99Ms !== undefined && o.workload.connections >= 50) goals.push(`p99 ≤ ${o.workload.targetP99Ms} ms ${l?.median ? verdict(l.median.p99 <= o.workload.targetP99Ms) : ''}`.trim());
      if (l?.median) goals.push(`no errors ${verdict(l.median.errors === 0)}`);
      const name = `${o.workload.name}${o.workload.unit ? ` (${o.workload.unit.split(' ')[0]})` : ''}`;
      rows.push(`| ${name} | ${o.workload.connections} | ${cell(l).join(' | ')} | ${OTHER_LABEL[other] ?? other} | ${cell(p).join(' | ')} | ${ratio === undefined ? 'n/a' : `${ratio.toFixed(2)}×`} | ${goals.join('; ')} |`);
    }
  }
  return rows.join('\n');
}

/**
 * CPU per request (median over rounds): Latchkey's node process, its Postgres backends, their sum,
 * and the other server's process (the peer keeps everything in its own memory).
 */
function cpuTable(r: Report): string {
  const rows = [
    '| workload | conn | Latchkey node ms/req | Latchkey Postgres ms/req | Latchkey total ms/req | other server ms/req | Latchkey total / other | target |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const o of r.outcomes) {
    if (o.workload.only) continue;
    const runs = o.perTarget.latchkey?.runs ?? [];
    const node = median(runs.map((x) => x.cpuMsPerRequest ?? NaN));
    const pgc = median(runs.map((x) => x.pgCpuMsPerRequest ?? NaN));
    const total = median(runs.map((x) => (x.cpuMsPerRequest ?? NaN) + (x.pgCpuMsPerRequest ?? NaN)));
    for (const name of othersOf(o)) {
      const other = median((o.perTarget[name]?.runs ?? []).map((x) => x.cpuMsPerRequest ?? NaN));
      const ratio = total / other;
      const target = o.workload.name === 'refresh_token' ? `≤ 0.5× ${Number.isFinite(ratio) ? verdict(ratio <= 0.5) : ''}` : '';
      rows.push(`| ${o.workload.name} | ${o.workload.connections} | ${fmt(node, 3)} | ${fmt(pgc, 3)} | ${fmt(total, 3)} | ${fmt(other, 3)} (${name}) | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'n/a'} | ${target} |`);
    }
  }
  return rows.join('\n');
}

/** The login burst: 100 browsers submitting the login form at once. */
function burstSection(r: Report): string {
  const o = r.outcomes.find((x) => x.workload.name === loginBurst.name);
  const pt = o?.perTarget.latchkey;
  if (!pt) return 'not run';
  if (pt.status !== 'ok') return `Latchkey: ${pt.status === 'na' ? 'n/a' : 'error'} (${pt.reason ?? ''})`;
  const errors = pt.runs.reduce((a, x) => a + x.errors, 0);
  return [
    `${o!.workload.connections} fresh browsers open the login page, then all submit the form at the same moment (one burst per round, ${pt.runs.length} rounds). An error page is any answer other than the redirect on the way to the code; a busy page that reloads itself is followed and counted as a retry. Target: no error page ${verdict(errors === 0)}.`,
    '',
    '| round | outcome | p50 ms | p99 ms | first error page |',
    '|---:|---|---:|---:|---|',
    ...pt.runs.map((x) => `| ${x.round} | ${x.detail ?? ''} | ${fmt(x.p50, 0)} | ${fmt(x.p99, 0)} | ${(x.firstError ?? '').replace(/\|/g, '/').slice(0, 120)} |`),
  ].join('\n');
}

function passwordSection(r: Report): string {
  const o = r.outcomes.find((x) => x.workload === passwordLogin);
  const cores = os.cpus().length;
  const keycloak = KEYCLOAK_LOGINS_PER_VCPU * cores;
  const pt = o?.perTarget.latchkey;
  const lines = [`Keycloak's sizing guide: about ${KEYCLOAK_LOGINS_PER_VCPU} password logins/s per vCPU, so ${keycloak}/s for this machine's ${cores} cores. The peer's dev login hashes nothing, so it is not compared.`, ''];
  if (!pt) lines.push('not run');
  else if (pt.status !== 'ok') lines.push(`Latchkey: ${pt.status === 'na' ? 'n/a' : 'error'} (${pt.reason ?? ''})`);
  else {
    const m = pt.median!;
    lines.push(
      '| | logins/s | p50 ms | p99 ms | errors | vs Keycloak sizing |',
      '|---|---:|---:|---:|---:|---:|',
      `| Latchkey (${o!.workload.connections} concurrent browsers) | ${fmt(m.rps)} | ${fmt(m.p50, 2)} | ${fmt(m.p99, 2)} | ${m.errors} | ${(m.rps / keycloak).toFixed(2)}× |`,
    );
  }
  return lines.join('\n');
}

function startupSection(r: Report): string {
  const warm = median(r.startup.warmMs);
  return [
    '| measurement | ms |',
    '|---|---:|',
    `| launch dist/server.js → /readyz 200, fresh database (migrations + key generation) | ${fmt(r.startup.coldMs, 0)} |`,
    `| the same, existing database (median of ${r.startup.warmMs.length}: ${r.startup.warmMs.map((x) => fmt(x, 0)).join(', ')}) — target ≤ 1,500 ms ${verdict(Number.isFinite(warm) ? warm <= 1500 : undefined)} | ${fmt(warm, 0)} |`,
    ...(r.startup.replicaBMs !== undefined ? [`| second replica (existing database) | ${fmt(r.startup.replicaBMs, 0)} |`] : []),
    ...(r.startup.peerMs !== undefined ? [`| for reference: node-oidc-provider via tsx → discovery 200 | ${fmt(r.startup.peerMs, 0)} |`] : []),
  ].join('\n');
}

function propagationSection(r: Report): string {
  if (r.propagation.length === 0) return 'not run (--no-revocation)';
  const rows = ['| revoked on A | n | median ms | p99 ms | max ms | B still active after A answered | B never inactive (10 s) |', '|---|---:|---:|---:|---:|---:|---:|'];
  for (const p of r.propagation) {
    if ('na' in p) rows.push(`| ${p.kind} | n/a: ${p.na} | | | | | |`);
    else rows.push(`| ${p.kind} | ${p.n} | ${fmt(p.medianMs, 2)} | ${fmt(p.p99Ms, 2)} | ${fmt(p.maxMs, 2)} | ${p.staleAnswers} answers | ${p.timeouts} |`);
  }
  return `${rows.join('\n')}\n\nDelay = from POST /revoke's answer on replica A to the first /introspect on replica B saying active:false (polled back to back, so it includes one introspection round trip).`;
}

function largeSection(r: Report): string {
  const L = r.large;
  if (!L.empty || !L.seeded) return L.status;
  const ratio = L.seeded.rps / L.empty.rps;
  return [
    L.rows ?? '',
    '',
    '| refresh_token | req/s | p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|',
    `| few rows | ${fmt(L.empty.rps)} | ${fmt(L.empty.p50, 2)} | ${fmt(L.empty.p99, 2)} | ${L.empty.errors} |`,
    `| seeded | ${fmt(L.seeded.rps)} | ${fmt(L.seeded.p50, 2)} | ${fmt(L.seeded.p99, 2)} | ${L.seeded.errors} |`,
    '',
    `seeded / few rows = ${ratio.toFixed(3)} (target ≥ 0.85: ${verdict(ratio >= 0.85)})`,
  ].join('\n');
}

function rawTable(r: Report): string {
  const rows = [
    '| workload | conn | server | round | position | req/s | p50 ms | p99 ms | errors | requests | s | server CPU ms/req | Postgres CPU ms/req | first error |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const all = [...r.outcomes.flatMap((o) => Object.values(o.perTarget).flatMap((p) => p.runs)), ...(r.large.runs ?? [])];
  for (const x of all) {
    const pgc = x.pgCpuMsPerRequest === undefined ? '' : `${x.pgCpuMsPerRequest.toFixed(3)}${x.pgBackendsLost ? ` (${x.pgBackendsLost} backends gone)` : ''}`;
    rows.push(`| ${x.workload} | ${x.connections} | ${x.target} | ${x.round} | ${x.position} | ${x.rps.toFixed(1)} | ${x.p50.toFixed(2)} | ${x.p99.toFixed(2)} | ${x.errors} | ${x.requests} | ${x.seconds.toFixed(2)} | ${x.cpuMsPerRequest === undefined ? '' : x.cpuMsPerRequest.toFixed(3)} | ${pgc} | ${(x.firstError ?? '').replace(/\|/g, '/').slice(0, 120)} |`);
  }
  return rows.join('\n');
}

function notesSection(r: Report): string {
  const lines: string[] = [];
  for (const o of r.outcomes) {
    for (const [name, pt] of Object.entries(o.perTarget)) {
      if (pt.status !== 'ok') lines.push(`- ${label(o.workload)} on ${name}: ${pt.status === 'na' ? 'n/a' : 'ERROR'} — ${pt.reason}`);
      for (const n of pt.notes) lines.push(`- ${label(o.workload)} on ${name}: ${n}`);
    }
    if (o.workload.unit && o.workload.connections !== CONNECTION_COUNTS[0]) lines.push(`- ${o.workload.name}: one unit = ${o.workload.unit}`);
  }
  return lines.join('\n');
}

function renderReport(r: Report): string {
  return [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\` (bench/run.ts); numbers from one machine, one run: compare the ratios, not the absolute figures.`,
    '',
    ...r.machine.map((m) => `- ${m}`),
    `- command: \`${r.command}\``,
    `- started ${r.startedAt.toISOString()}, finished ${(r.finishedAt ?? new Date()).toISOString()}; load average at the end: ${r.loadEnd ?? '?'}`,
    `- each figure: median of ${ROUNDS} runs of ${DURATION_MS / 1000} s per server, alternating which server goes first, after a ${WARMUP_MS / 1000} s warm-up; errors summed over the runs; Latchkey/peer is the median of the per-round ratios`,
    `- Latchkey: dist/server.js with its defaults; the bench sets only ${[...DEPLOYMENT_SETTINGS].join(', ')}. Deviations from the defaults: ${r.deviations.length ? r.deviations.join(', ') : 'none'} (LOG_LEVEL is info, its default: one JSON line per request, written to a pipe read by \`wc -l\` in its own process, as a log collector would; ${r.logLines === undefined ? '?' : r.logLines.toLocaleString('en-US')} lines written by the Latchkey processes, ${r.requestsServed.toLocaleString('en-US')} requests measured on replica A, of which successful discovery and JWKS GETs write no line, by Latchkey's default)`,
    `- ${CONNECTION_COUNTS.join(' and ')} connections (virtual clients) for each compared workload; fresh refresh chains and login sessions before every warm-up and measured run, on both servers (outside the timed window)`,
    `- Postgres: synchronous_commit ${r.pgSettings.synchronousCommit ?? '?'}; autovacuum ${r.pgSettings.autovacuum ?? '?'} on this server${r.pgSettings.autovacuum === 'off' ? ', so the bench runs VACUUM (ANALYZE) on the tables refresh_token and authcode_session write (and dpop_proofs, for the DPoP workload) before each of their measured runs, outside the timed window, as autovacuum would about once a minute on a default install' : ''}`,
    ...(r.distChanged ? [`- **warning: dist/ was rebuilt during the run** (build stamp ${r.distChanged}); processes started after that (replica B, --large) ran newer code than replica A`] : []),
    '',
    '## Latchkey vs node-oidc-provider (and, for discovery and JWKS, a bare node:http server)',
    '',
    summaryTable(r),
    '',
    'Discovery and JWKS are compared with a bare node:http server writing the same bytes (`bench/reference.ts`: Latchkey\'s status, headers and body for each document, fetched once; no framework, logging or database): the machine\'s and the load generator\'s ceiling for these two documents. Everything else is compared with node-oidc-provider.',
    '',
    '### CPU per request',
    '',
    'User + system CPU from /proc/<pid>/stat, sampled before and after each run: Latchkey\'s node process, plus the Postgres client backends connected to its database (found in pg_stat_activity; Postgres\'s shared background processes — WAL writer, checkpointer — are not counted, for lack of a way to split them from other databases on this server). A figure that a busy machine disturbs less than throughput.',
    '',
    cpuTable(r),
    '',
    ...(r.outcomes.some((o) => o.workload.name === DPOP_WORKLOAD) ? [dpopSection(r.outcomes), ''] : []),
    '## A burst of logins',
    '',
    burstSection(r),
    '',
    '## Password login (argon2id)',
    '',
    passwordSection(r),
    '',
    '## Start-up',
    '',
    startupSection(r),
    '',
    '## Memory',
    '',
    `Latchkey resident memory (VmRSS) after the whole benchmark: ${fmt(r.rss.latchkey, 1)} MB — target ≤ 200 MB ${verdict(r.rss.latchkey === undefined ? undefined : r.rss.latchkey <= 200)}` +
      (r.rss.peer !== undefined ? ` (node-oidc-provider, for reference: ${fmt(r.rss.peer, 1)} MB)` : ''),
    '',
    `Latchkey runs with MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_ ?? '131072'}, as \`npm start\` and the Docker image run it: glibc then gives large blocks (argon2's 19 MiB, the crypto threads' buffers) back when they are freed. With glibc's adaptive threshold the same run ended at 204–210 MB (measured 2026-11-24 on this machine).`,
    '',
    '## Revocation propagation between two replicas on one Postgres',
    '',
    propagationSection(r),
    '',
    '## Back-Channel Logout delay',
    '',
    backchannelSection(r.backchannel),
    '',
    '## Refresh cost as the tables grow',
    '',
    largeSection(r),
    '',
    '## Notes',
    '',
    notesSection(r),
    '',
    '### The peer',
    '',
    ...r.peerConfig.map((l) => `- ${l}`),
    '',
    '## Raw runs',
    '',
    rawTable(r),
    '',
  ].join('\n');
}

const PEER_CONFIG_NOTES = [
  'node-oidc-provider ' + readVersion('oidc-provider') + ' in its own process, default in-memory adapter (LRU), devInteractions for login (no password hashing)',
  'ES256 key first in its keystore (RS256 also present: its default for ID tokens)',
  `resourceIndicators: ${RESOURCE} → access tokens as RFC 9068 JWTs signed ES256, scope api:read, 900 s; client_credentials asks for it with resource=, the web client gets it by default and keeps it on refresh`,
  'the userinfo client has no default resource, so its token is opaque (the only kind the peer accepts at /userinfo); /introspect is benched with an opaque client_credentials token because the peer refuses to introspect JWTs',
  'rotateRefreshToken always, issueRefreshToken whenever the client has the refresh_token grant (Latchkey rotates every refresh)',
  'first-party clients granted without a consent screen (loadExistingGrant), as Latchkey does; PKCE S256 required; client_secret_basic',
  'routes renamed to Latchkey\'s paths; both servers get the same requests (parameters, client authentication, PKCE, cookies), from the same drivers',
  'its best configuration for these workloads: every warm-up and measured run of refresh_token starts from new chains, and of authcode_session from new login sessions (bench/workloads/stateful.ts, `reset`), made outside the timed window. Why: its in-memory adapter walks a grant\'s token list on every save, so a refresh chain (and a session whose grant collects a refresh token per code exchange) slows it down as it grows — a measured round on long chains ran 727–1,432 req/s against about 1,500 req/s from fresh logins. Latchkey gets the same fresh state. It runs with NODE_ENV=production and logs nothing per request (its default)',
];

function readVersion(pkg: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

async function machineInfo(): Promise<string[]> {
  const cpus = os.cpus();
  let pgVersion = '?';
  try {
    pgVersion = await withAdmin(async (c) => String((await c.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version));
  } catch {
    /* reported as ? */
  }
  let commit = '?';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    /* not a git checkout */
  }
  return [
    `machine: ${cpus.length} × ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()} (${os.arch()})`,
    `Node ${process.version}, PostgreSQL ${pgVersion}, autocannon ${readVersion('autocannon')}, node-oidc-provider ${readVersion('oidc-provider')}; load generator on the same machine`,
    `Latchkey commit ${commit} (dist/ as built by scripts/ensure-built.js)`,
    `load average at the start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine disturbs absolute numbers; the alternating rounds are there for that)`,
  ];
}

// ───────────────────────────── main ─────────────────────────────

async function main(): Promise<void> {
  installCleanup(stopAll);
  const watchdog = setTimeout(() => {
    log('bench: watchdog: 30 minutes passed, stopping');
    void stopAll().finally(() => process.exit(1));
  }, 30 * 60 * 1000);
  watchdog.unref();

  const report: Report = {
    startedAt: new Date(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).filter((a) => a !== '--').join(' ')}` : ''}`,
    machine: await machineInfo(),
    outcomes: [],
    startup: { warmMs: [] },
    rss: {},
    propagation: [],
    large: { status: args.large ? 'not run' : 'not run (pass --large; needs the final schema in bench/seed-large.ts)' },
    peerConfig: [...PEER_CONFIG_NOTES],
    deviations: inheritedDeviations(),
    pgSettings: {},
    requestsServed: 0,
  };
  if (report.deviations.length) log(`bench: Latchkey deviates from its defaults: ${report.deviations.join(', ')}`);
  const outPath = path.resolve(ROOT, args.out);
  const buildStamp = () => {
    try {
      return fs.readFileSync(path.join(ROOT, 'dist', '.build-stamp'), 'utf8').trim();
    } catch {
      return 'none';
    }
  };
  const stampAtStart = buildStamp();
  const dbs: string[] = [];
  try {
    // Latchkey on a fresh database: first start (migrations, keys), provisioning, then warm starts
    const e: LatchkeyEnv = { databaseUrl: `${PG_BASE}/${args.db}`, kek: crypto.randomBytes(32).toString('base64') };
    log(`bench: database ${args.db} (recreated)`);
    await recreateDb(args.db);
    admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
    await admin.connect();
    report.pgSettings = {
      synchronousCommit: String((await admin.query('SHOW synchronous_commit')).rows[0].synchronous_commit),
      autovacuum: String((await admin.query('SHOW autovacuum')).rows[0].autovacuum),
    };
    dbs.push(args.db);
    const portA = await freePort();
    const issuerA = `http://127.0.0.1:${portA}`;
    {
      const { child, readyMs } = await startLatchkey('latchkey', e, portA, issuerA);
      report.startup.coldMs = readyMs;
      await child.stop();
    }
    const prov = await provision(e);
    let a: Child | undefined;
    for (let i = 0; i < 3; i++) {
      const { child, readyMs } = await startLatchkey('latchkey', e, portA, issuerA);
      report.startup.warmMs.push(readyMs);
      if (i < 2) await child.stop();
      else a = child;
    }
    log(`bench: Latchkey ready in ${fmt(report.startup.coldMs, 0)} ms (fresh db), ${report.startup.warmMs.map((x) => fmt(x, 0)).join(' / ')} ms (existing)`);

    const latchkey: Target = {
      name: 'latchkey',
      issuer: issuerA,
      pid: a!.pid,
      pgDatabase: args.db,
      ...(await discover(issuerA)),
      user: { email: prov.user.email, password: prov.user.password },
      clients: prov.clients,
      redirectUri: REDIRECT_URI,
      resource: RESOURCE,
      scopes: SCOPES,
      introspectResource: RESOURCE,
    };
    // the peer signs ID tokens with the alg Latchkey's carry (its default is RS256 too), so the
    // code and refresh flows do the same signing work on both sides
    const idTokenAlg = await latchkeyIdTokenAlg(latchkey);
    report.peerConfig.push(`ID tokens signed ${idTokenAlg}, as Latchkey's (${idTokenAlgSource})`);

    // the peer, with its own clients and the same user
    const portP = await freePort();
    const issuerP = `http://127.0.0.1:${portP}`;
    const secret = () => crypto.randomBytes(32).toString('base64url');
    const peerClients = { cc: { id: 'bench-cc', secret: secret() }, web: { id: 'bench-web', secret: secret() }, ui: { id: 'bench-ui', secret: secret() } };
    const peerCfg: PeerConfig = { port: portP, issuer: issuerP, redirectUri: REDIRECT_URI, resource: RESOURCE, user: { email: prov.user.email, name: prov.user.name }, clients: peerClients, idTokenAlg };
    const tp = performance.now();
    const peer = startChild('peer', ['--import', 'tsx', path.join(ROOT, 'bench', 'peer.ts')], { PEER_CONFIG: JSON.stringify(peerCfg), NODE_ENV: 'production' }, { cwd: ROOT, ipc: true });
    report.startup.peerMs = await waitFor200(peer, `${issuerP}/.well-known/openid-configuration`, tp);

    const peerTarget: Target = {
      name: 'peer',
      issuer: issuerP,
      pid: peer.pid,
      ...(await discover(issuerP)),
      user: { email: prov.user.email, password: 'any-password-the-dev-login-ignores' },
      clients: peerClients,
      redirectUri: REDIRECT_URI,
      resource: RESOURCE,
      scopes: SCOPES,
      introspectResource: undefined,
    };

    // the DPoP workload's second peer: node-oidc-provider with DPoP nonces required (bench/dpop.ts)
    const noncePeer = WORKLOADS.some((w) => w.name === DPOP_WORKLOAD) ? await startNoncePeer(peerTarget, peerCfg, ROOT) : undefined;
    if (noncePeer) report.peerConfig.push(...DPOP_PEER_NOTES);

    // the yardstick for discovery and JWKS: a bare node:http server writing Latchkey's bytes
    let bareTarget: Target | undefined;
    let bare: Child | undefined;
    if (WORKLOADS.some((w) => w.against === 'bare')) {
      const portR = await freePort();
      bare = startChild('bare-http', ['--import', 'tsx', path.join(ROOT, 'bench', 'reference.ts'), latchkey.endpoints.discovery, latchkey.endpoints.jwks, String(portR)], { NODE_ENV: 'production' }, { cwd: ROOT });
      await waitFor200(bare, `http://127.0.0.1:${portR}/.well-known/jwks.json`, performance.now());
      const onR = (u: string) => u.replace(issuerA, `http://127.0.0.1:${portR}`);
      bareTarget = { ...latchkey, name: 'bare-http', pid: bare.pid, pgDatabase: undefined, endpoints: { ...latchkey.endpoints, discovery: onR(latchkey.endpoints.discovery), jwks: onR(latchkey.endpoints.jwks) } };
    }

    for (const w of WORKLOADS) {
      log(`bench: ${label(w)}`);
      const o = await runWorkload(w, [latchkey, peerTarget, ...(bareTarget ? [bareTarget] : []), ...(noncePeer ? [noncePeer.target] : [])]);
      report.outcomes.push(o);
      report.requestsServed += (o.perTarget.latchkey?.runs ?? []).reduce((n, x) => n + x.requests, 0);
      if (bare && !WORKLOADS.slice(WORKLOADS.indexOf(w) + 1).some((x) => x.against === 'bare')) {
        await bare.stop();
        bare = undefined;
      }
      if (a!.proc.exitCode !== null || a!.proc.signalCode !== null) throw new Error(`Latchkey exited during ${w.name}:\n${a!.tail()}`);
      if (peer.proc.exitCode !== null || peer.proc.signalCode !== null) throw new Error(`the peer exited during ${w.name}:\n${peer.tail()}`);
    }

    // revocation propagation: a second replica on the same database, behind the same issuer
    if (!args['no-revocation']) {
      log('bench: revocation propagation (replica B)');
      const portB = await freePort();
      const { child: b, readyMs } = await startLatchkey('latchkey-b', e, portB, issuerA);
      report.startup.replicaBMs = readyMs;
      const onB = (u: string) => u.replace(issuerA, `http://127.0.0.1:${portB}`);
      const ep = latchkey.endpoints;
      const endpointsB = Object.fromEntries(Object.entries(ep).map(([k, v]) => [k, onB(v)])) as unknown as Endpoints;
      const replicaB: Target = { ...latchkey, name: 'latchkey-b', pid: b.pid, endpoints: endpointsB };
      for (const kind of ['access_token', 'refresh_token'] as const) {
        try {
          const p = await measurePropagation(latchkey, replicaB, kind, REVOCATIONS);
          report.propagation.push(p);
          log(`  ${kind}: median ${fmt(p.medianMs, 2)} ms, max ${fmt(p.maxMs, 2)} ms over ${p.n}`);
        } catch (err) {
          const na = err instanceof NotAvailable ? err.message : `error: ${(err as Error).message}`;
          report.propagation.push({ kind, na });
          log(`  ${kind}: n/a (${na})`);
        }
      }
      await b.stop();
      log('bench: back-channel logout delay');
      try {
        const register = async (uri: string) => {
          const c = await cli(e, ['clients', 'create', '--name', 'bench-bcl', '--redirect-uri', REDIRECT_URI, '--first-party', '--scopes', 'openid', '--id-token-alg', ID_TOKEN_ALG, '--backchannel-logout-uri', uri]);
          return { id: String(c.client_id), secret: String(c.client_secret) };
        };
        const bc = await measureBackchannelLogout(latchkey, register, REVOCATIONS);
        report.backchannel = bc;
        log(`  back-channel logout: median ${fmt(bc.medianMs, 2)} ms, max ${fmt(bc.maxMs, 2)} ms over ${bc.n}`);
      } catch (err) {
        report.backchannel = { na: err instanceof NotAvailable ? err.message : `error: ${(err as Error).message}` };
        log(`  back-channel logout: n/a (${report.backchannel.na})`);
      }
    }

    // Token Status Lists (issue 12): its own Latchkey with STATUS_LIST_TTL=2, to keep the run short
    if (!args['no-revocation']) {
      log('bench: token status lists (STATUS_LIST_TTL=2)');
      const out = path.join(os.tmpdir(), `latchkey-status-list-${process.pid}.md`);
      try {
        await runToCompletion(['--import', 'tsx', path.join(ROOT, 'bench', 'status-list.ts'), '--revocations', String(REVOCATIONS), '--duration', String(DURATION_MS / 1000), '--pg', PG_BASE, '--out', out], {}, ROOT, undefined, 900_000);
        statusListMd = fs.readFileSync(out, 'utf8').replace(/^# .*\n\n/, '');
        fs.rmSync(out, { force: true });
      } catch (err) {
        statusListMd = `### Token Status Lists\n\nn/a: ${(err as Error).message.slice(0, 300)}`;
      }
      log(`  ${statusListMd.split('\n').find((l) => l.startsWith('Revocation window')) ?? 'done'}`);
    }

    if (args.large) await runLarge(report, latchkey, e, dbs);

    report.rss.latchkey = rssMb(a!.pid);
    report.rss.peer = rssMb(peer.pid);
  } finally {
    report.finishedAt = new Date();
    report.loadEnd = os.loadavg().map((x) => x.toFixed(2)).join(' ');
    if (buildStamp() !== stampAtStart) report.distChanged = `${stampAtStart} → ${buildStamp()}`;
    await stopAll();
    await admin?.end().catch(() => {});
    if (logLines.length) report.logLines = (await Promise.all(logLines)).reduce((a, b) => a + b, 0);
    if (!args['keep-db']) for (const db of dbs) await dropDb(db).catch((err: unknown) => log(`bench: could not drop ${db}: ${(err as Error).message}`));
  }

  const md = `${renderReport(report).trimEnd()}\n\n${statusListMd}\n`;
  fs.writeFileSync(outPath, md);
  process.stdout.write(`\n${summaryTable(report)}\n\n${passwordSection(report)}\n\n${startupSection(report)}\n\nLatchkey RSS after the run: ${fmt(report.rss.latchkey)} MB\n\n${propagationSection(report)}\n\n${backchannelSection(report.backchannel)}\n\n${statusListMd}\n\n${largeSection(report)}\n\nwritten: ${path.relative(ROOT, outPath)}\n`);
}

/** Refresh throughput on a database seeded with a large, mostly expired history vs. the bench's own. */
async function runLarge(report: Report, empty: Target, base: LatchkeyEnv, dbs: string[]): Promise<void> {
  const name = `${args.db}_large`;
  log(`bench: large tables (${name})`);
  await recreateDb(name);
  dbs.push(name);
  const e: LatchkeyEnv = { databaseUrl: `${PG_BASE}/${name}`, kek: base.kek };
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const first = await startLatchkey('latchkey-large', e, port, issuer);
  await first.child.stop();
  const prov = await provision(e);
  try {
    const seeded = await seedLarge({ databaseUrl: e.databaseUrl, clientId: prov.clients.web.id, userId: prov.user.id, ...SEED_DEFAULTS, log });
    report.large.rows = `seeded: ${seeded.map((s) => `${s.table} ${s.rows.toLocaleString('en-US')} rows (${fmt(s.ms / 1000)} s)`).join(', ')}`;
  } catch (err) {
    report.large.status = err instanceof NotAvailable ? `n/a (${err.message})` : `error: ${(err as Error).message}`;
    log(`  ${report.large.status}`);
    return;
  }
  // what autovacuum would have done meanwhile (it is off on some development Postgres installs,
  // this machine's included): without it the bench's own database, after every workload's
  // rotations, is bloated with dead rows and the "few rows" side is the slower one
  for (const db of [args.db, name]) await withAdmin((c) => c.query('VACUUM ANALYZE'), db);
  report.large.rows += '; both databases vacuumed and analyzed before the runs';
  const { child } = await startLatchkey('latchkey-large', e, port, issuer);
  const large: Target = { ...empty, name: 'large', issuer, pid: child.pid, ...(await discover(issuer)), user: { ...empty.user, password: prov.user.password }, clients: prov.clients };
  const o = await runWorkload({ ...refreshWorkload, name: 'refresh_token (data growth)' }, [{ ...empty, name: 'few-rows' }, large]);
  const e1 = o.perTarget['few-rows'];
  const l1 = o.perTarget.large;
  report.large.empty = e1?.median;
  report.large.seeded = l1?.median;
  report.large.runs = [...(e1?.runs ?? []), ...(l1?.runs ?? [])];
  if (!report.large.empty || !report.large.seeded) report.large.status = `error: ${e1?.reason ?? l1?.reason ?? 'no runs'}`;
  await child.stop();
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    log(`bench: FAILED: ${(err as Error).stack ?? String(err)}`);
    await stopAll();
    process.exit(1);
  },
);

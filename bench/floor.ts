// The floor (issue 14): what the bench's token workloads cost on a server that does nothing but
// the work itself (bench/floor-server.ts: node:http, jose, pg, Latchkey's sealed refresh tokens;
// no framework, logging or checks). CPU per request of that server, next to the peer's and
// Latchkey's in bench/RESULTS.md, bounds the ratio any server on this stack could reach on this
// machine: a target ratio above peer CPU / floor CPU cannot be met by trimming Latchkey.
//
//   npm run bench:floor [-- --duration 5 --rounds 3 --pg postgres://postgres@127.0.0.1:5432 --out bench/RESULTS-floor.md]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { cannon } from './lib/cannon.js';
import { basicAuth, createAgent, form, json, request } from './lib/http.js';
import { cpuMs, freePort, installCleanup, pgBackendCpu, pgCpuBetween, startChild, stopAll } from './lib/procs.js';
import { drive, fmt, median, type RunResult } from './lib/stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    pg: { type: 'string', default: process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432' },
    db: { type: 'string', default: 'latchkey_bench_floor' },
    out: { type: 'string', default: path.join('bench', 'RESULTS-floor.md') },
  },
});
const DURATION = Number(args.duration) * 1000;
const ROUNDS = Math.max(1, Number(args.rounds));
const PG = args.pg.replace(/\/+$/, '');
if (!/^[a-z_][a-z0-9_]*$/.test(args.db)) throw new Error('--db must be a plain identifier');
const log = (s: string) => process.stderr.write(`${s}\n`);

installCleanup(stopAll);
const admin = new pg.Client({ connectionString: `${PG}/postgres` });
await admin.connect();
await admin.query(`DROP DATABASE IF EXISTS ${args.db} WITH (FORCE)`);
await admin.query(`CREATE DATABASE ${args.db}`);
const sync = (await admin.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit;

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = startChild('floor', ['--import', 'tsx', path.join(ROOT, 'bench', 'floor-server.ts'), String(port), `${PG}/${args.db}`], { NODE_ENV: 'production' }, { cwd: ROOT });
for (let i = 0; ; i++) {
  try {
    if ((await request(`${base}/userinfo`)).status === 401) break;
  } catch {
    // not listening yet
  }
  if (i > 200) throw new Error(`floor server did not start:\n${server.tail()}`);
  await new Promise((r) => setTimeout(r, 100));
}

const auth = basicAuth('floor-client', 'floor-secret-floor-secret-floor-secret');
const formHeaders = { 'content-type': 'application/x-www-form-urlencoded', authorization: auth };
const ccBody = form({ grant_type: 'client_credentials', scope: 'api:read', resource: 'https://api.example' });
const cc = json<{ access_token: string }>(await request(`${base}/token`, { method: 'POST', headers: formHeaders, body: ccBody }));
if (!cc.access_token) throw new Error('floor: client_credentials gave no token');
await request(`${base}/register-token`, { method: 'POST', headers: formHeaders, body: form({ token: cc.access_token }) });

interface Row {
  workload: string;
  conn: number;
  runs: { r: RunResult; nodeMs: number; pgMs: number }[];
}

const agent = createAgent(64);
const floorRefresh = async (rt: string): Promise<string> => {
  const res = json<{ refresh_token?: string; id_token?: string }>(await request(`${base}/token`, { method: 'POST', headers: formHeaders, body: form({ grant_type: 'refresh_token', refresh_token: rt }) }, agent));
  if (!res.refresh_token || !res.id_token) throw new Error(`floor refresh: ${JSON.stringify(res)}`);
  return res.refresh_token;
};
interface Chain {
  rt: string;
}
// `prepare` runs outside the sampled window (the refresh chains' first tokens), `run` inside it
const workloads: { name: string; prepare?: (conn: number) => Promise<Chain[]>; run: (conn: number, ms: number, chains: Chain[]) => Promise<RunResult> }[] = [
  { name: 'client_credentials', run: (c, ms) => cannon({ url: `${base}/token`, method: 'POST', headers: formHeaders, body: ccBody }, c, ms) },
  { name: 'userinfo', run: (c, ms) => cannon({ url: `${base}/userinfo`, headers: { authorization: `Bearer ${cc.access_token}` } }, c, ms) },
  { name: 'introspect', run: (c, ms) => cannon({ url: `${base}/introspect`, method: 'POST', headers: formHeaders, body: form({ token: cc.access_token }) }, c, ms) },
  {
    name: 'refresh_token',
    // fresh chains, one family per connection, made before the CPU is sampled
    prepare: (c) => Promise.all(Array.from({ length: c }, async () => ({ rt: await floorRefresh('new') }))),
    run: (_c, ms, chains) =>
      drive(chains, ms, async (ch) => {
        ch.rt = await floorRefresh(ch.rt);
      }),
  },
];

const rows: Row[] = [];
for (const w of workloads) {
  for (const conn of [20, 50]) {
    const row: Row = { workload: w.name, conn, runs: [] };
    await w.run(conn, 1000, (await w.prepare?.(conn)) ?? []); // warm-up
    for (let i = 0; i < ROUNDS; i++) {
      if (w.name === 'refresh_token') {
        const vac = new pg.Client({ connectionString: `${PG}/${args.db}` });
        await vac.connect();
        await vac.query('VACUUM (ANALYZE) floor_families');
        await vac.end();
      }
      const chains = (await w.prepare?.(conn)) ?? [];
      const n0 = cpuMs(server.pid) ?? 0;
      const p0 = await pgBackendCpu(admin, args.db);
      const r = await w.run(conn, DURATION, chains);
      const nodeMs = (cpuMs(server.pid) ?? 0) - n0;
      const pgMs = pgCpuBetween(p0, await pgBackendCpu(admin, args.db)).ms;
      row.runs.push({ r, nodeMs, pgMs });
      log(`floor ${w.name} @${conn} round ${i + 1}: ${fmt(r.rps)}/s p50 ${fmt(r.p50, 2)} p99 ${fmt(r.p99, 2)} errors ${r.errors} cpu ${fmt(nodeMs / r.requests, 3)}+pg ${fmt(pgMs / r.requests, 3)} ms/req`);
    }
    rows.push(row);
  }
}

await server.stop();
await admin.query(`DROP DATABASE IF EXISTS ${args.db} WITH (FORCE)`);
await admin.end();

const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
const md = [
  '# The floor: the token workloads on a server that does only the work',
  '',
  'Written by `npm run bench:floor` (bench/floor.ts). `bench/floor-server.ts` answers the bench\'s token workloads on bare node:http with the libraries Latchkey uses and nothing else: the client secret compared by digest, the access token (and for refresh the ID token) signed by jose with ES256 under a WebCrypto key, refresh tokens sealed as Latchkey seals them, one `UPDATE … RETURNING` per rotation in Postgres as a named prepared statement; /userinfo and /introspect look the token up in memory. No framework, logging, rate limits, security headers, audit, revocation or input checks. Its CPU per request is a floor for any server on this stack on this machine: the peer\'s CPU per request divided by it bounds the ratio a server could reach by trimming alone.',
  '',
  `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version}, Postgres synchronous_commit ${sync}; load average at the end: ${load}`,
  `- each figure: median of ${ROUNDS} runs of ${DURATION / 1000} s after a 1 s warm-up; the load generator (autocannon, or the bench's http client for refresh chains) runs on the same 2 cores`,
  '',
  '| workload | conn | req/s | p50 ms | p99 ms | errors | node CPU ms/req | Postgres CPU ms/req | total ms/req |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((row) => {
    const m = (f: (x: Row['runs'][number]) => number) => median(row.runs.map(f));
    const nodeMs = m((x) => x.nodeMs / x.r.requests);
    const pgMs = m((x) => x.pgMs / x.r.requests);
    return `| ${row.workload} | ${row.conn} | ${fmt(m((x) => x.r.rps))} | ${fmt(m((x) => x.r.p50), 2)} | ${fmt(m((x) => x.r.p99), 2)} | ${row.runs.reduce((a, x) => a + x.r.errors, 0)} | ${fmt(nodeMs, 3)} | ${fmt(pgMs, 3)} | ${fmt(nodeMs + pgMs, 3)} |`;
  }),
  '',
].join('\n');
fs.writeFileSync(path.resolve(ROOT, args.out), md);
process.stdout.write(`${md}\nwritten: ${args.out}\n`);
process.exit(0);

// `npm run bench:metrics`: what the Prometheus metrics cost on the hot path. The same built server
// (dist/server.js, one Postgres database) runs client_credentials under autocannon with
// METRICS_PORT unset (off: no hooks) and set (every request observed, /metrics scraped every
// second as Prometheus would), in alternating rounds, and the medians are compared: throughput, and
// the server's CPU time per request (from /proc), which other load on the machine disturbs less.
// Options: --duration 5 (s per round) --rounds 3 --connections 16 --pg postgres://postgres@127.0.0.1:5432
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { cannon } from './lib/cannon.js';
import { basicAuth, form, request } from './lib/http.js';
import { cpuMs, freePort, installCleanup, runToCompletion, startChild, stopAll, waitFor200 } from './lib/procs.js';
import { fmt, median, medianOf, type RunResult } from './lib/stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '16' },
    pg: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432' },
  },
});
const durationMs = Number(args.duration) * 1000;
const rounds = Number(args.rounds);
const connections = Number(args.connections);

installCleanup(stopAll);

const dbName = `latchkey_bench_metrics_${crypto.randomBytes(4).toString('hex')}`;
const admin = async (sql: string) => {
  const c = new pg.Client({ connectionString: `${args.pg}/postgres` });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
};
await admin(`CREATE DATABASE ${dbName}`);
const databaseUrl = `${args.pg}/${dbName}`;
const kek = crypto.randomBytes(32).toString('base64');
const baseEnv = { DATABASE_URL: databaseUrl, LATCHKEY_KEK: kek, LATCHKEY_KEK_FILE: '', LOG_LEVEL: 'warn', MALLOC_MMAP_THRESHOLD_: '131072' };

try {
  const out = await runToCompletion(
    [path.join(ROOT, 'dist', 'cli.js'), 'clients', 'create', '--name', 'bench-cc', '--grant-types', 'client_credentials', '--scopes', 'api:read', '--audiences', 'https://api.example', '--json'],
    baseEnv,
    ROOT,
  );
  const client = JSON.parse(out) as { client_id: string; client_secret: string };

  const runs: Record<'off' | 'on', RunResult[]> = { off: [], on: [] };
  const cpu: Record<'off' | 'on', number[]> = { off: [], on: [] };
  for (let round = 0; round <= rounds; round++) {
    for (const mode of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      const port = await freePort();
      const metricsPort = await freePort();
      const issuer = `http://127.0.0.1:${port}`;
      const env: Record<string, string> = { ...baseEnv, PORT: String(port), HOST: '127.0.0.1', ISSUER: issuer, ...(mode === 'on' ? { METRICS_PORT: String(metricsPort) } : {}) };
      const t0 = performance.now();
      const child = startChild(`latchkey-${mode}`, [path.join(ROOT, 'dist', 'server.js')], env, { cwd: ROOT });
      await waitFor200(child, `${issuer}/readyz`, t0);
      const scraper = mode === 'on' ? setInterval(() => void request(`http://127.0.0.1:${metricsPort}/metrics`).catch(() => {}), 1000) : undefined;
      const req = { url: `${issuer}/token`, method: 'POST' as const, headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(client.client_id, client.client_secret) }, body: form({ grant_type: 'client_credentials', scope: 'api:read' }) };
      await cannon(req, connections, 1000); // warm-up (JIT, caches)
      const cpu0 = cpuMs(child.pid) ?? 0;
      const r = await cannon(req, connections, durationMs);
      const usPerRequest = (((cpuMs(child.pid) ?? 0) - cpu0) * 1000) / r.requests;
      if (scraper) clearInterval(scraper);
      if (mode === 'on') {
        const m = await request(`http://127.0.0.1:${metricsPort}/metrics`);
        if (!/latchkey_tokens_issued_total\{grant_type="client_credentials"\} [1-9]/.test(m.body)) throw new Error('metrics on, but no client_credentials counted');
      }
      await child.stop();
      // round 0 is a warm-up of the machine: not counted
      if (round > 0) {
        runs[mode].push(r);
        cpu[mode].push(usPerRequest);
      }
      process.stdout.write(`round ${round}${round === 0 ? ' (warm-up)' : ''} metrics ${mode}: ${fmt(r.rps, 0)} req/s, p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, ${fmt(usPerRequest, 0)} µs CPU/request, errors ${r.errors}\n`);
    }
  }
  const off = medianOf(runs.off);
  const on = medianOf(runs.on);
  const cost = (1 - on.rps / off.rps) * 100;
  const cpuOff = median(cpu.off);
  const cpuOn = median(cpu.on);
  process.stdout.write(
    `\nclient_credentials, ${connections} connections, ${rounds} rounds of ${durationMs / 1000} s (medians)\n` +
      `  metrics off: ${fmt(off.rps, 0)} req/s, p50 ${fmt(off.p50)} ms, p99 ${fmt(off.p99)} ms, ${fmt(cpuOff, 0)} µs CPU/request\n` +
      `  metrics on:  ${fmt(on.rps, 0)} req/s, p50 ${fmt(on.p50)} ms, p99 ${fmt(on.p99)} ms, ${fmt(cpuOn, 0)} µs CPU/request\n` +
      `  cost: ${fmt(cost, 1)}% of throughput, ${fmt((cpuOn / cpuOff - 1) * 100, 1)}% CPU per request (budget 3%)\n`,
  );
} finally {
  await stopAll();
  await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
}

// `npm run bench:metrics`, second part (alone: `node --import tsx bench/metrics-inject.ts`): the metrics' hot-path cost measured
// as CPU time per client_credentials request, in one process, with Fastify's `inject` (no sockets,
// so the cost's share is, if anything, overstated). Two apps on two in-memory databases, one with
// METRICS_PORT set (hooks on) and one without, are driven in alternating blocks; the median CPU
// per request of each is compared. Other load on the machine moves both alike within a block pair.
// Options: --blocks 20 --requests 2000 (per block) --concurrency 16
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/core/config.js';
import { openRuntime } from '../src/ops/runtime.js';
import { buildApp } from '../src/app.js';
import { cliContextFor } from '../src/ops/runtime.js';
import { runCommand } from '../src/cli/registry.js';
import { fmt, median } from './lib/stats.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: { blocks: { type: 'string', default: '20' }, requests: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '16' } },
});
const blocks = Number(args.blocks);
const perBlock = Number(args.requests);
const concurrency = Number(args.concurrency);

async function setup(metricsOn: boolean) {
  const config = loadConfig({ DATABASE_URL: 'memory:', LATCHKEY_KEK: crypto.randomBytes(32).toString('base64'), LOG_LEVEL: 'warn', ...(metricsOn ? { METRICS_PORT: '0' } : {}) });
  const rt = await openRuntime(config);
  const app = await buildApp(rt, { logLevel: 'warn' });
  await app.ready();
  const r = await runCommand(['clients', 'create', '--name', 'cc', '--grant-types', 'client_credentials', '--scopes', 'api:read', '--audiences', 'https://api.example', '--json'], cliContextFor(rt), undefined);
  const c = JSON.parse(r.stdout) as { client_id: string; client_secret: string };
  const headers = { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}` };
  const payload = 'grant_type=client_credentials&scope=api%3Aread';
  const one = async () => {
    const res = await app.inject({ method: 'POST', url: '/token', headers, payload });
    if (res.statusCode !== 200) throw new Error(`token: ${res.statusCode} ${res.body}`);
  };
  return { app, rt, one };
}

async function block(one: () => Promise<void>): Promise<number> {
  let left = perBlock;
  const t0 = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (left-- > 0) await one();
  }));
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / perBlock;
}

const off = await setup(false);
const on = await setup(true);
await block(off.one);
await block(on.one);
const us: Record<'off' | 'on', number[]> = { off: [], on: [] };
for (let i = 0; i < blocks; i++) {
  for (const mode of i % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) us[mode].push(await block(mode === 'off' ? off.one : on.one));
}
const mOff = median(us.off);
const mOn = median(us.on);
process.stdout.write(
  `client_credentials in process (inject), ${blocks} block pairs of ${perBlock} requests, ${concurrency} concurrent (medians)\n` +
    `  metrics off: ${fmt(mOff, 1)} µs CPU/request\n` +
    `  metrics on:  ${fmt(mOn, 1)} µs CPU/request\n` +
    `  cost: ${fmt((mOn / mOff - 1) * 100, 1)}% (budget 3%)\n`,
);
for (const s of [off, on]) {
  await s.app.close();
  await s.rt.close();
}

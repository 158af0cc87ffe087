// `latchkey plan`, through the real CLI binary: the revocation arithmetic of FACTS.md, without a
// database or a server (a DATABASE_URL that points nowhere and a DATA_DIR that does not exist are
// never touched).
import fs from 'node:fs';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { StatusList } from '@sd-jwt/jwt-status-list';
import t, { type Test } from 'tap';
import { compressedListBytes, STATUS_LIST_ENTRIES } from '../../src/cli/commands/plan.js';
import { runCli } from '../helpers/process.js';
import { tempDir } from '../helpers/runtime.js';

const cwd = tempDir('latchkey-plan-');
const dataDir = path.join(cwd, 'data');
// unreachable on purpose: the command must not try
const env = { CWD: cwd, DATA_DIR: dataDir, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' };

async function planJson(t: Test, args: string[]) {
  const r = await runCli(['plan', ...args, '--json'], env);
  t.equal(r.code, 0, `plan ${args.join(' ')}: exit 0 ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, number | boolean | null | string>;
}

t.test('1M sessions, a budget of 2,000 refreshes/s', async (t) => {
  const p = await planJson(t, ['--sessions', '1000000', '--refresh-budget', '2000']);
  t.equal(p.min_access_ttl, 500, 'T ≥ N/Q = 500 s');
  t.equal(p.refresh_qps_at_min_access_ttl, 2000);
  t.equal(p.access_ttl, 900, 'the default ACCESS_TOKEN_TTL');
  t.equal(p.refresh_qps, 1111.1, 'N/900 ≈ 1,111/s');
  t.equal(p.within_budget, true);
  t.equal(p.revocation_window_without_status_list, 900, 'without status lists: the access-token lifetime');
  t.equal(p.revocation_window_without_status_list_at_min_access_ttl, 500);
  t.equal(p.status_ttl, 10);
  t.equal(p.revocation_window_with_status_list, 11, 'with: ttl + 1 s of propagation');
  t.equal(p.status_lists, 1, 'one list of 2^20 entries');
  t.equal(p.status_list_bytes, 131072, '2^20 bits = 128 KiB before compression');
  t.equal(p.fetches_per_second_per_resource_server, 0.1, 'one fetch per ttl per list');
  t.equal(p.revoked_fraction, 0.01);
  const c = p.status_bytes_compressed as number;
  t.ok(c > 1000 && c < 131072 / 4, `1% revoked compresses to far less than 128 KiB (${c} bytes)`);
});

t.test('budgets, TTLs and list counts', async (t) => {
  let p = await planJson(t, ['--sessions', '1000000', '--refresh-budget', '500', '--access-ttl', '3600', '--status-ttl', '5']);
  t.equal(p.min_access_ttl, 2000);
  t.equal(p.refresh_qps, 277.8, '1M / 3,600 s ≈ 278/s');
  t.equal(p.within_budget, true);
  t.equal(p.revocation_window_with_status_list, 6);
  t.equal(p.fetches_per_second_per_resource_server, 0.2);
  p = await planJson(t, ['--sessions', '1000000', '--refresh-budget', '1000']);
  t.equal(p.min_access_ttl, 1000);
  t.equal(p.within_budget, false, 'the default 900 s is over a budget of 1,000/s');
  p = await planJson(t, ['--sessions', '1000000', '--access-ttl', '300']);
  t.equal(p.refresh_qps, 3333.3, '300 s → ≈ 3,333/s');
  t.equal(p.min_access_ttl, null, 'no budget, no minimum');
  t.equal(p.within_budget, null);
  p = await planJson(t, ['--sessions', '5000000', '--refresh-budget', '1000000']);
  t.equal(p.min_access_ttl, 30, 'never below the server’s minimum ACCESS_TOKEN_TTL (30 s)');
  t.equal(p.status_lists, 5, 'ceil(5M / 2^20) lists');
  t.equal(p.status_bytes, 5 * 131072);
  t.equal(p.fetches_per_second_per_resource_server, 0.5);
  p = await planJson(t, ['--sessions', '1000000', '--revoked-fraction', '0']);
  t.ok((p.status_bytes_compressed as number) < 1000, `nothing revoked: a few hundred bytes (${p.status_bytes_compressed})`);
});

t.test('readable text without --json', async (t) => {
  const r = await runCli(['plan', '--sessions', '1000000', '--refresh-budget', '2000'], env);
  t.equal(r.code, 0);
  t.match(r.stdout, /^min_access_ttl: 500$/m);
  t.match(r.stdout, /^revocation_window_with_status_list: 11$/m);
});

t.test('bad input is refused with one line', async (t) => {
  for (const args of [[], ['--sessions', 'many'], ['--sessions', '0'], ['--sessions', '10', '--refresh-budget', '0'], ['--sessions', '10', '--access-ttl', '5'], ['--sessions', '10', '--revoked-fraction', '2']]) {
    const r = await runCli(['plan', ...args], env);
    t.equal(r.code, 1, `${args.join(' ') || '(no options)'}: exit 1`);
    t.match(r.stderr, /^error: --[a-z-]+ .+\n$/, r.stderr.trim());
  }
  const r = await runCli(['plan', '--sessions', '10', '--bogus'], env);
  t.equal(r.code, 2, 'an unknown option: usage error');
});

t.test('no database, no data directory', async (t) => {
  t.notOk(fs.existsSync(dataDir), 'DATA_DIR was never created');
  t.same(fs.readdirSync(cwd), [], 'nothing written in the working directory (no KEK file)');
});

t.test('the compression estimate compresses a real list', async (t) => {
  // the list the estimate compresses is a list the status list library reads back
  const bytes = compressedListBytes(STATUS_LIST_ENTRIES, 0.01);
  t.ok(bytes > 0);
  const statuses = new Array<number>(STATUS_LIST_ENTRIES).fill(0);
  for (let i = 0; i < STATUS_LIST_ENTRIES; i += 100) statuses[i] = 1;
  const lst = new StatusList(statuses, 1).compressStatusList();
  t.equal(inflateSync(Buffer.from(lst, 'base64url')).length, STATUS_LIST_ENTRIES / 8, 'a 2^20-entry list is 128 KiB inflated');
});

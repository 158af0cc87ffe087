// The database side of one refresh rotation, before and after sealed refresh tokens, on the same
// Postgres, schema and data, alternating: the statement the grant ran before (consume the token row,
// insert its successor, update the family: three rows, one index entry) and the one it runs now
// (one UPDATE of the family row). Reports, per rotation: the Postgres backends' CPU (from
// /proc/<pid>/stat, as bench/run.ts samples it), the WAL written, and the share of HOT updates.
// WAL bytes and HOT counts do not depend on how busy the machine is; CPU does, so compare the two
// variants within one run.
//
//   node --import tsx bench/rotation-sql.ts [--pg postgres://postgres@127.0.0.1:5432] [--families 200]
//     [--concurrency 8] [--rotations 4000] [--rounds 3]
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createDb } from '../src/db/create-db.js';
import { migrate } from '../src/db/migrator.js';

const { values: args } = parseArgs({
  options: {
    pg: { type: 'string', default: process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432' },
    families: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
    rotations: { type: 'string', default: '4000' },
    rounds: { type: 'string', default: '3' },
  },
});
const FAMILIES = Number(args.families);
const CONCURRENCY = Number(args.concurrency);
const ROTATIONS = Number(args.rotations);
const ROUNDS = Number(args.rounds);
const DB = `latchkey_rotation_${process.pid}`;
const base = args.pg!.replace(/\/+$/, '');
const sha = (s: string) => crypto.hash('sha256', s, 'base64url');
const CLIENT = 'bench-client';

// the statement of src/grants/refresh-token.ts before the sealing (commit b21202d), unchanged
const OLD = `
    WITH consumed AS (
      UPDATE refresh_tokens t SET consumed_at = $1, successor_digest = $2
      FROM refresh_families f JOIN users u ON u.id = f.user_id
      WHERE t.token_digest = $3 AND t.consumed_at IS NULL AND f.id = t.family_id
        AND (f.client_id = $4) IS TRUE AND f.revoked_at IS NULL
        AND f.idle_expires_at > $5 AND f.absolute_expires_at > $6
        AND NOT u.disabled
        AND f.scopes @> $7::jsonb
        AND (jsonb_array_length(f.resources) = 0 OR f.resources @> $8::jsonb)
      RETURNING t.family_id
    ), successor AS (
      INSERT INTO refresh_tokens (token_digest, family_id, created_at)
      SELECT $9::text, family_id, $10::timestamptz FROM consumed
    ), fam AS (
      UPDATE refresh_families f SET
        last_used_at = $11,
        idle_expires_at = LEAST($12::timestamptz, f.absolute_expires_at),
        access_expires_at = GREATEST(f.access_expires_at, $13::timestamptz)
      FROM consumed
      WHERE f.id = consumed.family_id AND f.revoked_at IS NULL
      RETURNING f.id, f.user_id, f.scopes, f.resources, f.auth_time, f.session_sid, f.status_idx::text AS status_idx
    )
    SELECT fam.*, u.email, u.name, u.email_verified FROM fam JOIN users u ON u.id = fam.user_id`;

// the statement of src/grants/refresh-token.ts now (`rotation`), with the same parameters it binds
const NEW = `
    UPDATE refresh_families f SET
      generation = f.generation + 1,
      rotated_at = $1::timestamptz,
      last_used_at = $2::timestamptz,
      idle_expires_at = LEAST($3::timestamptz, f.absolute_expires_at),
      access_expires_at = GREATEST(f.access_expires_at, $4::timestamptz)
    FROM users u
    WHERE f.id = $5::uuid AND f.generation = $6::int AND u.id = f.user_id
      AND (f.client_id = $7::text) IS TRUE AND f.revoked_at IS NULL
      AND f.idle_expires_at > $8::timestamptz AND f.absolute_expires_at > $9::timestamptz
      AND NOT u.disabled
      AND f.scopes @> $10::jsonb
      AND (jsonb_array_length(f.resources) = 0 OR f.resources @> $11::jsonb)
      AND (f.dpop_jkt IS NULL OR f.dpop_jkt = $12::text)
    RETURNING f.id, f.user_id, f.scopes, f.resources, f.auth_time, f.session_sid, f.status_idx::text AS status_idx, f.generation,
      u.email, u.name, u.email_verified`;

interface Chain {
  familyId: string;
  token: string;
  generation: number;
}

const cpuTicks = (pid: number): number => {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
};
const TICK_MS = 1000 / 100; // USER_HZ

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: `${base}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
  await admin.query(`CREATE DATABASE ${DB}`);
  try {
    const url = `${base}/${DB}`;
    const dbh = await createDb({ databaseUrl: url, dataDir: os.tmpdir() });
    await migrate(dbh.db);
    await dbh.close();
    const setup = new pg.Client({ connectionString: url });
    await setup.connect();
    const now = new Date();
    await setup.query(`INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ($1, 'bench@example.com', 'x', $2, $2)`, [crypto.randomUUID(), now]);
    const userId = (await setup.query<{ id: string }>(`SELECT id FROM users`)).rows[0]!.id;
    await setup.query(`INSERT INTO clients (client_id, name, is_public, secret_digest, created_at, updated_at) VALUES ($1, 'bench', false, 'x', $2, $2)`, [CLIENT, now]);
    const chains: Record<'old' | 'new', Chain[]> = { old: [], new: [] };
    for (const v of ['old', 'new'] as const) {
      for (let i = 0; i < FAMILIES; i++) {
        const id = crypto.randomUUID();
        await setup.query(
          `INSERT INTO refresh_families (id, user_id, client_id, scopes, resources, auth_time, session_sid, offline, code_digest, created_at, last_used_at,
             idle_expires_at, absolute_expires_at, created_ip, created_user_agent, access_expires_at)
           VALUES ($1, $2, $3, '["openid","profile","email","offline_access","api:read"]', '["https://api.example"]', $4, $5, true, $6, $4, $4,
             $4::timestamptz + interval '14 days', $4::timestamptz + interval '30 days', '127.0.0.1', 'autocannon', $4::timestamptz + interval '15 minutes')`,
          [id, userId, CLIENT, now, `sid-${id}`, sha(`code-${id}`)],
        );
        const token = crypto.randomBytes(32).toString('base64url');
        if (v === 'old') await setup.query(`INSERT INTO refresh_tokens (token_digest, family_id, created_at) VALUES ($1, $2, $3)`, [sha(token), id, now]);
        chains[v].push({ familyId: id, token, generation: 0 });
      }
    }
    await setup.query('VACUUM ANALYZE');

    const pool = new pg.Pool({ connectionString: url, max: CONCURRENCY });
    const clients = await Promise.all(Array.from({ length: CONCURRENCY }, () => pool.connect()));
    const pids = await Promise.all(clients.map(async (c) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid));

    const rotateOld = async (c: pg.PoolClient, ch: Chain, at: Date) => {
      const next = crypto.randomBytes(32).toString('base64url');
      const idle = new Date(at.getTime() + 14 * 86400_000);
      const exp = new Date(at.getTime() + 900_000);
      const r = await c.query({ name: 'old', text: OLD, values: [at, sha(next), sha(ch.token), CLIENT, at, at, '[]', '[]', sha(next), at, at, idle, exp] });
      if (r.rowCount !== 1) throw new Error('old rotation matched nothing');
      ch.token = next;
    };
    const rotateNew = async (c: pg.PoolClient, ch: Chain, at: Date) => {
      const idle = new Date(at.getTime() + 14 * 86400_000);
      const exp = new Date(at.getTime() + 900_000);
      const r = await c.query({ name: 'new', text: NEW, values: [at, at, idle, exp, ch.familyId, ch.generation, CLIENT, at, at, '[]', '[]', ''] });
      if (r.rowCount !== 1) throw new Error('new rotation matched nothing');
      ch.generation++;
    };

    const stat = async () => {
      const t = await setup.query<{ relname: string; upd: string; hot: string }>(
        `SELECT relname, n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot FROM pg_stat_user_tables WHERE relname IN ('refresh_families', 'refresh_tokens')`,
      );
      const wal = (await setup.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      return { t: Object.fromEntries(t.rows.map((r) => [r.relname, { upd: Number(r.upd), hot: Number(r.hot) }])), wal };
    };
    const walBytes = async (a: string, b: string) => Number((await setup.query<{ d: string }>('SELECT pg_wal_lsn_diff($1, $2)::text AS d', [b, a])).rows[0]!.d);

    const results: Array<{ variant: string; round: number; cpu: number; wal: number; hot: string; ms: number }> = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const variant of round % 2 ? (['old', 'new'] as const) : (['new', 'old'] as const)) {
        const list = chains[variant];
        const rotate = variant === 'old' ? rotateOld : rotateNew;
        await setup.query('SELECT pg_stat_force_next_flush()').catch(() => undefined);
        await new Promise((r) => setTimeout(r, 600)); // let the statistics of the previous run reach the views
        const before = await stat();
        const cpu0 = pids.reduce((s, p) => s + cpuTicks(p), 0);
        const started = performance.now();
        let next = 0;
        await Promise.all(
          clients.map(async (c, i) => {
            // each connection its own families, so no two rotate one family at once
            const mine = list.filter((_, k) => k % CONCURRENCY === i);
            for (;;) {
              const n = next++;
              if (n >= ROTATIONS) return;
              await rotate(c, mine[n % mine.length]!, new Date());
            }
          }),
        );
        const ms = performance.now() - started;
        const cpu = (pids.reduce((s, p) => s + cpuTicks(p), 0) - cpu0) * TICK_MS;
        await new Promise((r) => setTimeout(r, 1200)); // backends report their statistics about once a second
        const after = await stat();
        const hot = Object.entries(after.t)
          .map(([rel, a]) => {
            const b = before.t[rel] ?? { upd: 0, hot: 0 };
            const upd = a.upd - b.upd;
            return upd ? `${rel} ${a.hot - b.hot}/${upd}` : '';
          })
          .filter(Boolean)
          .join(', ');
        const wal = await walBytes(before.wal, after.wal);
        results.push({ variant, round, cpu: cpu / ROTATIONS, wal: wal / ROTATIONS, hot, ms });
        process.stdout.write(`round ${round} ${variant}: ${(cpu / ROTATIONS).toFixed(3)} ms CPU/rotation, ${(wal / ROTATIONS).toFixed(0)} WAL bytes/rotation, ${(ROTATIONS / (ms / 1000)).toFixed(0)}/s, HOT ${hot}\n`);
      }
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (const v of ['old', 'new']) {
      const r = results.filter((x) => x.variant === v);
      process.stdout.write(`${v}: median ${median(r.map((x) => x.cpu)).toFixed(3)} ms Postgres CPU/rotation, ${median(r.map((x) => x.wal)).toFixed(0)} WAL bytes/rotation\n`);
    }
    process.stdout.write(`load average: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${CONCURRENCY} connections, ${FAMILIES} families per variant, ${ROTATIONS} rotations per run\n`);
    for (const c of clients) c.release();
    await pool.end();
    await setup.end();
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  }
}

await main();

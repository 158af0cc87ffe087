// `latchkey plan`: the revocation arithmetic of issue 12 as a command. Needs no database and no
// server: from the number of sessions and a refresh budget it derives the access-token lifetime, the
// refresh load, the revocation windows with and without status lists, and what the lists cost.
import { deflateSync } from 'node:zlib';
import type { Command, Values } from '../command.js';

/** Entries per status list (the server's lists hold 2^20 one-bit entries, one per family). */
export const STATUS_LIST_ENTRIES = 2 ** 20;
/** The server's default ACCESS_TOKEN_TTL, and the bounds config.ts accepts. */
export const DEFAULT_ACCESS_TTL = 900;
const MIN_ACCESS_TTL = 30;
const MAX_ACCESS_TTL = 86_400;
export const DEFAULT_STATUS_TTL = 10;
/** A revocation reaches every replica's status lists within about a second (LISTEN/NOTIFY). */
export const PROPAGATION_SECONDS = 1;

export interface PlanInput {
  sessions: number;
  refreshBudget?: number;
  statusTtl: number;
  accessTtl: number;
  revokedFraction: number;
}

export interface Plan {
  sessions: number;
  access_ttl: number;
  refresh_qps: number;
  refresh_budget: number | null;
  min_access_ttl: number | null;
  refresh_qps_at_min_access_ttl: number | null;
  within_budget: boolean | null;
  revocation_window_without_status_list: number;
  revocation_window_without_status_list_at_min_access_ttl: number | null;
  status_ttl: number;
  revocation_window_with_status_list: number;
  status_lists: number;
  status_list_entries: number;
  status_list_bits: number;
  status_list_bytes: number;
  status_bytes: number;
  revoked_fraction: number;
  status_list_bytes_compressed: number;
  status_bytes_compressed: number;
  compression_estimate: string;
  fetches_per_second_per_resource_server: number;
  fetch_bytes_per_second_per_resource_server: number;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

// mulberry32: a seeded generator, so the estimate is the same on every run
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Compressed size of one list whose first `used` entries are revoked with probability `fraction`
 * (the rest of the list is unused, all zero): measured by compressing such a list, ZLIB level 9
 * as @sd-jwt/jwt-status-list does.
 */
export function compressedListBytes(used: number, fraction: number): number {
  const bytes = new Uint8Array(STATUS_LIST_ENTRIES / 8);
  const random = prng(1);
  for (let i = 0; i < used; i++) if (random() < fraction) bytes[i >> 3]! |= 1 << (i & 7);
  return deflateSync(bytes, { level: 9 }).length;
}

export function plan(input: PlanInput): Plan {
  const { sessions: n, refreshBudget: q, statusTtl: s, accessTtl: t, revokedFraction: f } = input;
  const minTtl = q === undefined ? null : Math.min(MAX_ACCESS_TTL, Math.max(MIN_ACCESS_TTL, Math.ceil(n / q)));
  const lists = Math.max(1, Math.ceil(n / STATUS_LIST_ENTRIES));
  const full = Math.floor(n / STATUS_LIST_ENTRIES);
  const rest = n - full * STATUS_LIST_ENTRIES;
  const perFull = full > 0 ? compressedListBytes(STATUS_LIST_ENTRIES, f) : 0;
  const compressed = full * perFull + (rest > 0 || full === 0 ? compressedListBytes(rest, f) : 0);
  return {
    sessions: n,
    access_ttl: t,
    refresh_qps: round1(n / t),
    refresh_budget: q ?? null,
    min_access_ttl: minTtl,
    refresh_qps_at_min_access_ttl: minTtl === null ? null : round1(n / minTtl),
    within_budget: q === undefined ? null : n / t <= q,
    revocation_window_without_status_list: t,
    revocation_window_without_status_list_at_min_access_ttl: minTtl,
    status_ttl: s,
    revocation_window_with_status_list: s + PROPAGATION_SECONDS,
    status_lists: lists,
    status_list_entries: STATUS_LIST_ENTRIES,
    status_list_bits: 1,
    status_list_bytes: STATUS_LIST_ENTRIES / 8,
    status_bytes: (lists * STATUS_LIST_ENTRIES) / 8,
    revoked_fraction: f,
    status_list_bytes_compressed: full > 0 ? perFull : compressed,
    status_bytes_compressed: compressed,
    compression_estimate: `zlib level 9 of pseudo-random lists (seed 1) with ${f * 100}% of the used entries revoked`,
    fetches_per_second_per_resource_server: round1(lists / s),
    // base64url in the JWT: 4/3 of the compressed bytes (signature and claims left out); 304s make it less
    fetch_bytes_per_second_per_resource_server: Math.round((compressed * 4) / 3 / s),
  };
}

class PlanError extends Error {}

function number(values: Values, name: string, opts: { integer?: boolean; min: number; max?: number }): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const s = String(raw).replace(/[_,]/g, '');
  const v = Number(s);
  if (s === '' || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v)) || v < opts.min || (opts.max !== undefined && v > opts.max)) {
    throw new PlanError(`--${name} must be ${opts.integer ? 'an integer' : 'a number'} ≥ ${opts.min}${opts.max !== undefined ? ` and ≤ ${opts.max}` : ''}: ${String(raw)}`);
  }
  return v;
}

export const planCommands: Record<string, Command> = {
  plan: {
    usage: 'latchkey plan --sessions N [--refresh-budget Q] [--status-ttl S] [--access-ttl T] [--revoked-fraction F]',
    options: {
      sessions: { type: 'string' },
      'refresh-budget': { type: 'string' },
      'status-ttl': { type: 'string' },
      'access-ttl': { type: 'string' },
      'revoked-fraction': { type: 'string' },
    },
    needsDb: false,
    async run(_ctx, values) {
      const sessions = number(values, 'sessions', { integer: true, min: 1, max: 2 ** 40 });
      if (sessions === undefined) throw new PlanError('--sessions N is required');
      return plan({
        sessions,
        refreshBudget: number(values, 'refresh-budget', { min: 0.001 }),
        statusTtl: number(values, 'status-ttl', { integer: true, min: 1, max: 86_400 }) ?? DEFAULT_STATUS_TTL,
        accessTtl: number(values, 'access-ttl', { integer: true, min: MIN_ACCESS_TTL, max: MAX_ACCESS_TTL }) ?? DEFAULT_ACCESS_TTL,
        revokedFraction: number(values, 'revoked-fraction', { min: 0, max: 1 }) ?? 0.01,
      });
    },
  },
};

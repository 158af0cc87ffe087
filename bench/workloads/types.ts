// What a workload is: prepared once per server (tokens, sessions, refresh chains), then run for a
// fixed duration as many times as there are rounds. A missing endpoint is NotAvailable ("n/a").
import type { Target } from '../lib/oauth.js';
import type { RunResult } from '../lib/stats.js';

export interface Prepared {
  run(durationMs: number): Promise<RunResult & { firstError?: string; detail?: string }>;
  /** Facts worth printing (e.g. the access token's alg), the same for every round. */
  notes?: string[];
  /** Run before each warm-up and each measured run, outside the timed window (fresh chains, sessions, DPoP proofs for a run of `durationMs`). */
  reset?(durationMs?: number): Promise<void>;
}

export interface Workload {
  name: string;
  /** What one unit of `rps` is, when it is not one HTTP request. */
  unit?: string;
  connections: number;
  /** Whom Latchkey is compared with: node-oidc-provider (default) or the bare node:http server. */
  against?: 'peer' | 'bare';
  /** Servers that run it besides Latchkey and the one it is compared with (e.g. the DPoP workload's second peer). */
  extraTargets?: string[];
  /** Only these targets run it (e.g. password login: Latchkey only). */
  only?: string[];
  /** The target for the ratio Latchkey/peer (or Latchkey/bare), if any. */
  targetRatio?: number;
  /** The p99 bound (ms), checked at 50 connections. */
  targetP99Ms?: number;
  prepare(t: Target): Promise<Prepared>;
}

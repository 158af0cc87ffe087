// One run's numbers, whoever produced them (autocannon or a stateful driver), and the small
// statistics the report needs.

export interface RunResult {
  /** Completed requests (or flows) per second. */
  rps: number;
  p50: number;
  p99: number;
  /** Failed requests: connection errors, timeouts, non-2xx/3xx answers, protocol failures. */
  errors: number;
  requests: number;
  seconds: number;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Latencies in ms, errors and elapsed time → a RunResult. */
export function summarize(latencies: number[], errors: number, elapsedMs: number): RunResult {
  const sorted = Float64Array.from(latencies).sort();
  const seconds = elapsedMs / 1000;
  return { rps: latencies.length / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), errors, requests: latencies.length, seconds };
}

/** The median of each figure over rounds (errors are summed: any error matters). */
export function medianOf(runs: RunResult[]): RunResult {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    requests: runs.reduce((a, r) => a + r.requests, 0),
    seconds: runs.reduce((a, r) => a + r.seconds, 0),
  };
}

export function fmt(n: number | undefined, digits = 1): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(digits);
}

/**
 * Runs `vcs` virtual clients, each calling `step` in a loop until `durationMs` has passed, and
 * times every step. A failed step counts as an error and calls `recover` (bounded by the deadline).
 */
export async function drive<V>(vcs: V[], durationMs: number, step: (vc: V) => Promise<void>, recover?: (vc: V, err: unknown) => Promise<boolean>): Promise<RunResult & { firstError?: string }> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    vcs.map(async (vc) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await step(vc);
          latencies.push(performance.now() - t0);
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
          const ok = recover ? await recover(vc, err).catch(() => false) : false;
          if (!ok) return; // this virtual client cannot go on
        }
      }
    }),
  );
  return { ...summarize(latencies, errors, performance.now() - start), firstError };
}

// The failure counters of one replica: exact counters for up to MAX_EXACT_KEYS keys, none
// evicted before its window ends, then a fixed count-min sketch that can only over-count
// (src/http/plugins/failure-limits.ts has the rules; failure-limits-redis.ts the shared store).
import crypto from 'node:crypto';

/** Exact counters kept per replica (about 150 bytes each) before new keys go to the sketch. */
export const MAX_EXACT_KEYS = 100_000;
const SKETCH_DEPTH = 4;
const SKETCH_WIDTH = 1 << 16;

export interface Limited {
  key: string;
  max: number;
  /** The index of another key in the same list: this one's max refuses only while that one counts at least one. */
  onlyWith?: number;
}

/** The counting step: all keys or none. */
export interface CounterStore {
  /** Count one on every key unless one is at its max; then the milliseconds until it resets. */
  take(keys: Limited[], now: number): Promise<{ ok: true; release: () => Promise<void> } | { ok: false; retryAfterMs: number }>;
  /** Whether every key is below its max (nothing counted); else the milliseconds until it resets. */
  peek(keys: Limited[], now: number): Promise<{ ok: true } | { ok: false; retryAfterMs: number }>;
}


interface Entry {
  count: number;
  resetAt: number;
}

/**
 * Per-replica counters in fixed windows. At most `maxKeys` exact counters; a live one is never
 * evicted. Expired ones are dropped from the front of the table (a Map keeps insertion order, and
 * entries are created in time order), so reclaiming costs only what expired. When the table is
 * full, new keys are counted in a count-min sketch of fixed size, cleared at the end of each window
 * (it only over-counts: a collision may refuse a newcomer early, never admit one more).
 */
export class MemoryCounters implements CounterStore {
  private readonly entries = new Map<string, Entry>();
  private readonly sketch = new Uint32Array(SKETCH_DEPTH * SKETCH_WIDTH);
  private sketchResetAt = 0;
  private sketchGeneration = 0;
  private readonly seed = crypto.randomBytes(16);

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = MAX_EXACT_KEYS,
  ) {}

  /** Exact counters held (for tests and the README's bound). */
  get size(): number {
    return this.entries.size;
  }

  private reclaim(now: number): void {
    for (const [key, e] of this.entries) {
      if (e.resetAt > now) break;
      this.entries.delete(key);
    }
    if (now >= this.sketchResetAt) {
      this.sketch.fill(0);
      this.sketchResetAt = now + this.windowMs;
      this.sketchGeneration++;
    }
  }

  private cells(key: string): number[] {
    const h = crypto.createHmac('sha256', this.seed).update(key).digest();
    return Array.from({ length: SKETCH_DEPTH }, (_, row) => row * SKETCH_WIDTH + (h.readUInt32BE(row * 4) % SKETCH_WIDTH));
  }

  async take(keys: Limited[], now: number) {
    return this.takeNow(keys, now);
  }

  async peek(keys: Limited[], now: number) {
    return this.peekNow(keys, now);
  }

  /** A take undone at once (synchronously: nothing else runs in between). */
  peekNow(keys: Limited[], now: number): { ok: true } | { ok: false; retryAfterMs: number } {
    const r = this.takeNow(keys, now);
    if (!r.ok) return r;
    void r.release();
    return { ok: true };
  }

  /** Synchronous, hence atomic within this process. */
  takeNow(keys: Limited[], now: number): { ok: true; release: () => Promise<void> } | { ok: false; retryAfterMs: number } {
    this.reclaim(now);
    const plan = keys.map(({ key, max }) => {
      const e = this.entries.get(key);
      if (e && e.resetAt > now) return { key, max, entry: e, count: e.count, resetAt: e.resetAt };
      if (e || this.entries.size < this.maxKeys) return { key, max, entry: undefined, count: 0, resetAt: now + this.windowMs };
      const cells = this.cells(key);
      return { key, max, cells, count: Math.min(...cells.map((c) => this.sketch[c]!)), resetAt: this.sketchResetAt };
    });
    const full = plan.find((p, i) => p.count >= p.max && (keys[i]!.onlyWith === undefined || plan[keys[i]!.onlyWith!]!.count >= 1));
    if (full) {
      const other = keys[plan.indexOf(full)]!.onlyWith;
      const resetAt = other === undefined ? full.resetAt : Math.min(full.resetAt, plan[other]!.resetAt);
      return { ok: false as const, retryAfterMs: Math.max(1000, resetAt - now) };
    }
    const undo: Array<() => void> = [];
    for (const p of plan) {
      if (p.cells) {
        for (const c of p.cells) this.sketch[c]!++;
        const generation = this.sketchGeneration;
        const cells = p.cells;
        undo.push(() => {
          if (generation === this.sketchGeneration) for (const c of cells) if (this.sketch[c]! > 0) this.sketch[c]!--;
        });
        continue;
      }
      let entry = p.entry;
      if (!entry) {
        // a fresh window: re-insert at the back, keeping the table in time order
        this.entries.delete(p.key);
        entry = { count: 0, resetAt: p.resetAt };
        this.entries.set(p.key, entry);
      }
      entry.count++;
      const counted = entry;
      const key = p.key;
      undo.push(() => {
        if (this.entries.get(key) !== counted) return;
        counted.count--;
        if (counted.count <= 0) this.entries.delete(key);
      });
    }
    return {
      ok: true as const,
      release: async () => {
        for (const u of undo) u();
      },
    };
  }
}

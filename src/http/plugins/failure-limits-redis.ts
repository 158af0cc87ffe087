// The failure counters in Redis (REDIS_URL), shared by every replica: one Lua script counts an
// attempt on all its keys or refuses it (src/http/plugins/failure-limits.ts has the rules). While
// Redis is unreachable, the replica's own counters (MemoryCounters) answer, never no limit.
import type { CounterStore, Limited, MemoryCounters } from './failure-counters.js';

export const REFUSAL = `
local function ttl(key, fix)
  local t = redis.call('PTTL', key)
  if t < 0 then
    if fix then redis.call('PEXPIRE', key, ARGV[1]) end
    t = tonumber(ARGV[1])
  end
  return t
end
local function refusal(fix)
  for i = 1, #KEYS do
    if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[2 * i]) then
      local w = tonumber(ARGV[2 * i + 1])
      if w == 0 then return ttl(KEYS[i], fix) end
      if tonumber(redis.call('GET', KEYS[w]) or '0') >= 1 then return math.min(ttl(KEYS[i], fix), ttl(KEYS[w], fix)) end
    end
  end
  return nil
end`;
export const TAKE_SCRIPT = `${REFUSAL}
local refused = refusal(true)
if refused then return {0, refused} end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 or redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return {1, 0}`;
// The same refusal rule as TAKE_SCRIPT, counting nothing.
export const PEEK_SCRIPT = `${REFUSAL}
local refused = refusal(false)
if refused then return {0, refused} end
return {1, 0}`;
// Uncount only while the window that counted it lives (never create a key without expiry).
export const RELEASE_SCRIPT = `
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 1`;

export type RedisWithScripts = import('ioredis').Redis & {
  latchkeyTakeFailures(...args: Array<string | number>): Promise<[number, number]>;
  latchkeyReleaseFailures(...args: Array<string | number>): Promise<number>;
  latchkeyPeekFailures(...args: Array<string | number>): Promise<[number, number]>;
};

/** Per key: its max, and the 1-based index of the key it binds only with (0: none). */
function limitArgs(keys: Limited[]): number[] {
  return keys.flatMap((k) => [k.max, k.onlyWith === undefined ? 0 : k.onlyWith + 1]);
}

export class RedisCounters implements CounterStore {
  constructor(
    private readonly redis: RedisWithScripts,
    private readonly prefix: string,
    private readonly windowMs: number,
    private readonly fallback: MemoryCounters,
    private readonly onError: (err: Error) => void,
  ) {}

  async peek(keys: Limited[], now: number) {
    const names = keys.map((k) => this.prefix + k.key);
    let answer: [number, number];
    try {
      answer = await this.redis.latchkeyPeekFailures(names.length, ...names, this.windowMs, ...limitArgs(keys));
    } catch (err) {
      this.onError(err as Error);
      return this.fallback.peekNow(keys, now);
    }
    if (Number(answer[0]) !== 1) return { ok: false as const, retryAfterMs: Math.max(1000, Number(answer[1])) };
    return { ok: true as const };
  }

  async take(keys: Limited[], now: number) {
    const names = keys.map((k) => this.prefix + k.key);
    let answer: [number, number];
    try {
      answer = await this.redis.latchkeyTakeFailures(names.length, ...names, this.windowMs, ...limitArgs(keys));
    } catch (err) {
      // Redis unreachable: this replica's own counters, rather than no limit at all
      this.onError(err as Error);
      return this.fallback.takeNow(keys, now);
    }
    if (Number(answer[0]) !== 1) return { ok: false as const, retryAfterMs: Math.max(1000, Number(answer[1])) };
    return {
      ok: true as const,
      release: async () => {
        try {
          await this.redis.latchkeyReleaseFailures(names.length, ...names);
        } catch (err) {
          this.onError(err as Error);
        }
      },
    };
  }
}


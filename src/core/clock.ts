// One injected clock serves the whole server: expiry decisions compare against timestamps
// taken from it, never SQL now(), so tests can move time without sleeping.
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock for tests: starts at `start` and moves only when told. */
export class ManualClock implements Clock {
  constructor(private t = Date.now()) {}
  now(): number { return this.t; }
  advance(seconds: number): void { this.t += seconds * 1000; }
  set(ms: number): void { this.t = ms; }
}

export const epochSeconds = (clock: Clock): number => Math.floor(clock.now() / 1000);

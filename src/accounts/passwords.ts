// argon2id password hashing with OWASP parameters (m=19 MiB, t=2, p=1), run with bounded
// concurrency so that a flood of logins cannot starve token signing of the thread pool.
import argon2 from 'argon2';
import { TemporarilyUnavailable } from '../core/errors.js';
import { metrics } from '../core/metrics.js';

export const PASSWORD_PARAMS = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

/** A bounded semaphore: `limit` at once, at most `queue` waiting, the rest refused. */
export class Gate {
  private running = 0;
  private waiting: Array<() => void> = [];
  constructor(
    private readonly limit: number,
    private readonly queue: number,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) {
      if (this.waiting.length >= this.queue) {
        metrics.passwordHashRejections.inc();
        throw new TemporarilyUnavailable('the server is busy; try again shortly', 1);
      }
      metrics.passwordHashQueue.inc();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      metrics.passwordHashQueue.dec();
    } else {
      this.running++;
      metrics.passwordHashRunning.inc();
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else {
        this.running--;
        metrics.passwordHashRunning.dec();
      }
    }
  }
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hash: string, password: string): Promise<boolean>;
  needsRehash(hash: string): boolean;
  /** Verify against a fixed dummy hash, so unknown accounts cost the same as wrong passwords. */
  verifyDummy(password: string): Promise<false>;
}

export function createPasswordHasher(concurrency = 2, queue = 32): PasswordHasher {
  const gate = new Gate(concurrency, queue);
  let dummy: Promise<string> | undefined;
  const hasher: PasswordHasher = {
    hash: (password) => gate.run(() => argon2.hash(password, PASSWORD_PARAMS)),
    verify: (hash, password) =>
      gate.run(async () => {
        try {
          return await argon2.verify(hash, password);
        } catch {
          return false;
        }
      }),
    needsRehash: (hash) => {
      try {
        return argon2.needsRehash(hash, PASSWORD_PARAMS);
      } catch {
        return true;
      }
    },
    verifyDummy: async (password) => {
      dummy ??= argon2.hash('latchkey-dummy-password', PASSWORD_PARAMS);
      await hasher.verify(await dummy, password);
      return false;
    },
  };
  return hasher;
}

// Build a Runtime and an app in-process for protocol tests (app.inject, or a real port).
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ManualClock } from '../../src/core/clock.js';
import { loadConfig, type Config } from '../../src/core/config.js';
import { openRuntime, type Runtime } from '../../src/ops/runtime.js';
import { buildApp } from '../../src/app.js';
import type { PasswordHasher } from '../../src/accounts/passwords.js';

export const TEST_KEK = crypto.randomBytes(32).toString('base64');

export function tempDir(prefix = 'latchkey-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestEnv {
  rt: Runtime;
  app: FastifyInstance;
  clock: ManualClock;
  config: Config;
  logs: () => string;
  close(): Promise<void>;
}

export interface TestEnvOptions {
  env?: Record<string, string>;
  passwords?: PasswordHasher;
  listen?: boolean;
  /** The server's clock (a frozen ManualClock at the start by default). */
  clock?: ManualClock;
}

export async function createTestEnv(databaseUrl: string, opts: TestEnvOptions = {}): Promise<TestEnv> {
  const port = opts.listen ? await freePort() : 3000;
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    DATA_DIR: tempDir(),
    LATCHKEY_KEK: TEST_KEK,
    PORT: String(port),
    ISSUER: `http://127.0.0.1:${port}`,
    LOG_LEVEL: 'info',
    ...opts.env,
  });
  const clock = opts.clock ?? new ManualClock(Date.now());
  const rt = await openRuntime(config, { clock, passwords: opts.passwords });
  const stream = new PassThrough();
  let captured = '';
  stream.on('data', (c: Buffer) => (captured += c.toString('utf8')));
  const app = await buildApp(rt, { logStream: stream });
  if (opts.listen) await app.listen({ port, host: '127.0.0.1' });
  else await app.ready();
  return {
    rt,
    app,
    clock,
    config,
    logs: () => captured,
    async close() {
      await app.close();
      await rt.close();
    },
  };
}

/** A clock that runs with real time (for tests where another process checks our timestamps) and can still be moved. */
export class RunningClock extends ManualClock {
  private offset = 0;
  override now(): number {
    return Date.now() + this.offset;
  }
  override advance(seconds: number): void {
    this.offset += seconds * 1000;
  }
  override set(ms: number): void {
    this.offset = ms - Date.now();
  }
}

export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const p = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(p));
    });
  });
}

// Run the built server (dist/) and the `latchkey` command as child processes, as users do.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ServerProcess {
  url: string;
  proc: ChildProcess;
  /** stdout and stderr interleaved */
  output: () => string;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs = 30000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
}

export async function startServer(env: Record<string, string>, opts: { waitReady?: boolean; root?: string } = {}): Promise<ServerProcess> {
  const port = env.PORT ?? '0';
  const proc = spawn(process.execPath, [path.join(opts.root ?? ROOT, 'dist/server.js')], {
    cwd: env.CWD ?? ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    stdout += c.toString('utf8');
  });
  proc.stderr!.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    stderr += c.toString('utf8');
  });
  const url = `http://127.0.0.1:${port}`;
  // 'close' (not 'exit'): the output streams are complete by then
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  const sp: ServerProcess = {
    url,
    proc,
    output: () => out,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  if (opts.waitReady !== false) {
    try {
      // generous: a first start on a new PGlite directory runs initdb, slow on a busy machine
      const state = await waitFor(async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) return 'exited';
        const r = await fetch(`${url}/readyz`).catch(() => undefined);
        return r?.status === 200 ? 'ready' : undefined;
      }, 180000);
      if (state === 'exited') throw new Error(`server exited (${proc.exitCode ?? proc.signalCode}) before it was ready`);
    } catch (err) {
      // never leave a server behind: its open pipes would keep the test process alive
      await sp.stop('SIGKILL');
      throw new Error(`${(err as Error).message}; its output:\n${out}`);
    }
  }
  return sp;
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string>, stdin?: string, opts: { root?: string } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [path.join(opts.root ?? ROOT, 'bin/latchkey.js'), ...args], {
      cwd: env.CWD ?? ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(stdin ?? '');
  });
}

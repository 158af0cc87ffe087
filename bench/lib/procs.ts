// Child processes of the bench: started on loopback ports, waited for, measured, and always killed
// (on normal exit, on an error, on Ctrl-C).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import type pg from 'pg';
import { request } from './http.js';

const children = new Set<ChildProcess>();

function killAllNow(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

let installed = false;
export function installCleanup(onSignal: () => Promise<void>): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping the servers\n`);
      void onSignal().finally(() => process.exit(130));
    });
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** The last lines of stderr/stdout, for error messages. */
  tail(): string;
  stop(): Promise<void>;
  /** With `logSink`: the number of lines the child wrote to stdout, once it has exited. */
  stdoutLines?: Promise<number>;
}

/**
 * `logSink`: the child's stdout goes straight into a pipe read by `wc -l` (its own process), as a
 * server's output goes to a log collector, instead of through the bench's event loop, which is
 * also the load generator. BENCH_VERBOSE keeps it on the bench's stderr instead.
 */
export function startChild(name: string, args: string[], env: Record<string, string>, opts: { cwd: string; ipc?: boolean; logSink?: boolean }): Child {
  let sink: ChildProcess | undefined;
  let stdoutLines: Promise<number> | undefined;
  if (opts.logSink && !process.env.BENCH_VERBOSE) {
    const wc = spawn('wc', ['-l'], { stdio: ['pipe', 'pipe', 'ignore'] });
    sink = wc;
    // not in `children`: stopAll must not kill it before it has counted; it ends at the server's EOF
    let out = '';
    wc.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
    stdoutLines = new Promise((resolve) => wc.on('close', () => resolve(Number(out.trim()) || 0)));
  }
  const stdout = sink ? sink.stdin! : 'pipe';
  const proc = spawn(process.execPath, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...env },
    stdio: opts.ipc ? ['ignore', stdout, 'pipe', 'ipc'] : ['ignore', stdout, 'pipe'],
  });
  // the child holds the pipe's write end now; ours must close so that wc sees EOF when it exits
  if (sink) sink.stdin!.destroy();
  children.add(proc);
  const lines: string[] = [];
  const keep = (buf: Buffer) => {
    for (const l of buf.toString('utf8').split('\n')) {
      if (!l.trim()) continue;
      lines.push(l);
      if (lines.length > 40) lines.shift();
      if (process.env.BENCH_VERBOSE) process.stderr.write(`[${name}] ${l}\n`);
    }
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  proc.on('exit', () => children.delete(proc));
  if (proc.pid === undefined) throw new Error(`${name}: could not start`);
  return {
    name,
    proc,
    pid: proc.pid,
    tail: () => lines.slice(-15).join('\n'),
    stop: () => stopChild(proc),
    stdoutLines,
  };
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 8000);
  await exited;
  clearTimeout(timer);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c)));
}

/** Polls `url` until it answers 200; returns the ms since `startedAt`. Bounded by `timeoutMs`. */
export async function waitFor200(child: Child, url: string, startedAt: number, timeoutMs = 30000): Promise<number> {
  const deadline = startedAt + timeoutMs;
  while (performance.now() < deadline) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`${child.name} exited (${child.proc.exitCode ?? child.proc.signalCode}) before ${url} answered:\n${child.tail()}`);
    }
    try {
      const res = await request(url, { timeoutMs: 1000 });
      if (res.status === 200) return performance.now() - startedAt;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${child.name}: ${url} not 200 within ${timeoutMs} ms:\n${child.tail()}`);
}

/** Resident set size of a process in MB (VmRSS from /proc), or undefined off Linux. */
export function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a command to completion (stdin optional); resolves with stdout, rejects with stderr. */
export function runToCompletion(args: string[], env: Record<string, string>, cwd: string, stdin?: string, timeoutMs = 60000): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(proc);
    let out = '';
    let err = '';
    proc.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    proc.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(proc);
      if (code === 0) resolve(out);
      else reject(new Error(`${args.join(' ')} exited ${code ?? signal}: ${err.trim() || out.trim()}`));
    });
    proc.stdin.end(stdin ?? '');
  });
}

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat; undefined off Linux. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/**
 * CPU ms so far of each client backend connected to `db` (pg_stat_activity + /proc/<pid>/stat), read
 * through `admin`, a connection to another database (so that its own backend is never counted).
 */
export async function pgBackendCpu(admin: pg.Client, db: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", [db]);
  for (const { pid } of rows) {
    const ms = cpuMs(pid);
    if (ms !== undefined) out.set(pid, ms);
  }
  return out;
}

/** CPU the backends used between two samples: a backend new at the end counts whole (it started during the run). */
export function pgCpuBetween(before: Map<number, number>, after: Map<number, number>): { ms: number; lost: number } {
  let ms = 0;
  for (const [pid, v] of after) ms += v - (before.get(pid) ?? 0);
  let lost = 0;
  for (const pid of before.keys()) if (!after.has(pid)) lost++;
  return { ms, lost };
}

// USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK)
const CLOCK_TICKS = 100;

// The owner-only local socket through which `latchkey` commands reach a running embedded server
// (PGlite admits one process per data directory). The data directory is mode 0700 and the socket
// 0600, so only the owner can connect.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { runCommand, type CliContext, type CliResult } from './registry.js';

const SOCKET_NAME = 'latchkey.sock';

export function socketPath(dataDir: string): string {
  return path.join(dataDir, SOCKET_NAME);
}

// A socket address (sun_path) holds about 107 bytes; a deeper data directory is reached through a
// path relative to it. bind() and connect() read the path synchronously, so the working directory
// is changed only for the duration of that call.
const MAX_SOCKET_PATH = process.platform === 'linux' ? 107 : 103;

function atSocket<T>(dataDir: string, fn: (address: string) => T): T {
  const full = socketPath(dataDir);
  if (Buffer.byteLength(full) <= MAX_SOCKET_PATH) return fn(full);
  const cwd = process.cwd();
  process.chdir(dataDir);
  try {
    return fn(`./${SOCKET_NAME}`);
  } finally {
    process.chdir(cwd);
  }
}

const MAX_REQUEST = 1024 * 1024;

export async function serveCommands(dataDir: string, ctx: CliContext, onError: (err: Error) => void): Promise<{ close(): Promise<void> }> {
  const file = socketPath(dataDir);
  try {
    fs.unlinkSync(file); // we hold the data-dir lock, so any socket here is a stale one of ours
  } catch {
    /* none */
  }
  const server = net.createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => {});
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        conn.destroy();
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      conn.pause();
      void (async () => {
        let result: CliResult;
        try {
          const req = JSON.parse(line) as { argv?: unknown; stdin?: unknown };
          if (!Array.isArray(req.argv) || !req.argv.every((a) => typeof a === 'string')) throw new Error('bad request');
          result = await runCommand(req.argv as string[], ctx, typeof req.stdin === 'string' ? req.stdin : undefined);
        } catch (err) {
          onError(err as Error);
          result = { code: 1, stdout: '', stderr: 'error: the server could not run the command\n' };
        }
        conn.end(`${JSON.stringify(result)}\n`);
      })();
    });
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      atSocket(dataDir, (address) => server.listen(address, () => resolve()));
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(file, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        try {
          fs.unlinkSync(file);
        } catch {
          /* gone */
        }
      }),
  };
}

export function sendCommand(dataDir: string, argv: string[], stdin: string | undefined, timeoutMs = 60000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const conn = atSocket(dataDir, (address) => net.createConnection(address));
    let buf = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error('the running server did not answer'));
    }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(`${JSON.stringify({ argv, stdin })}\n`));
    conn.on('data', (c: string) => (buf += c));
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf.trim()) as CliResult);
      } catch {
        reject(new Error('the running server sent a malformed answer'));
      }
    });
  });
}

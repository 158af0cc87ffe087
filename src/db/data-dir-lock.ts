// The embedded database admits one process per data directory. Whoever opens it holds
// an exclusive lock file (created with O_EXCL, holding its pid); a stale one is taken over.
import fs from 'node:fs';
import path from 'node:path';

export type LockResult = { acquired: true; release: () => void } | { acquired: false; pid: number };

export function lockPath(dataDir: string): string {
  return path.join(dataDir, 'latchkey.lock');
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function ensureDataDir(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    fs.chmodSync(dataDir, 0o700);
  } catch {
    /* not ours to change; the lock still protects the data */
  }
}

export function acquireDataDirLock(dataDir: string): LockResult {
  ensureDataDir(dataDir);
  const file = lockPath(dataDir);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      let released = false;
      return {
        acquired: true,
        release: () => {
          if (released) return;
          released = true;
          try {
            if (readPid(file) === process.pid) fs.unlinkSync(file);
          } catch {
            /* already gone */
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = readPid(file);
      if (pid === undefined) {
        // written by a process that died between create and write, or being written now
        const age = Date.now() - safeMtime(file);
        if (age < 2000) return { acquired: false, pid: 0 };
      } else if (pid !== process.pid && isAlive(pid)) {
        return { acquired: false, pid };
      }
      // stale: the holder is dead; take it over
      try {
        fs.unlinkSync(file);
      } catch {
        /* somebody else took it over first; retry */
      }
    }
  }
  return { acquired: false, pid: readPid(file) ?? 0 };
}

function readPid(file: string): number | undefined {
  try {
    const n = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function safeMtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

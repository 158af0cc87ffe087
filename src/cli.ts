import path from 'node:path';
// The `latchkey` command. With the embedded database and a server running, the command is carried
// out by that server over its owner-only socket; otherwise the command opens the data itself.
import { systemClock } from './core/clock.js';
import { ConfigError, loadConfig } from './core/config.js';
import { createDb } from './db/create-db.js';
import { acquireDataDirLock } from './db/data-dir-lock.js';
import { migrate } from './db/migrator.js';
import { createPasswordHasher } from './accounts/passwords.js';
import { parseCommand, runParsed, type CliContext, type CliResult } from './cli/registry.js';
import { loadKek, type Kek } from './keys/kek.js';
import { sendCommand } from './cli/socket.js';
import { isEmbedded } from './ops/runtime.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** On a terminal, lists print as tables (`--table`); piped, as before. Passed on over the socket too. */
function withTableOnTerminal(argv: string[]): string[] {
  if (!process.stdout.isTTY || argv.includes('--json') || argv.includes('--table')) return argv;
  const end = argv.indexOf('--');
  return end < 0 ? [...argv, '--table'] : [...argv.slice(0, end), '--table', ...argv.slice(end)];
}

async function main(args: string[]): Promise<number> {
  const argv = withTableOnTerminal(args);
  let parsed;
  try {
    parsed = parseCommand(argv);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return 2;
  }
  if (!parsed.command.needsDb) return emit(await runParsed(parsed, undefined, undefined));

  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const stdin = parsed.values['password-stdin'] ? await readStdin() : undefined;

  let release = (): void => {};
  if (isEmbedded(config) && config.databaseUrl !== 'memory:') {
    const lock = acquireDataDirLock(config.dataDir);
    if (!lock.acquired) {
      try {
        return emit(await sendCommand(config.dataDir, absolutizeFileOptions(argv), stdin));
      } catch (err) {
        process.stderr.write(`error: the data directory ${config.dataDir} is in use by process ${lock.pid}, and its command socket did not answer (${(err as Error).message})\n`);
        return 1;
      }
    }
    release = lock.release;
  }
  try {
    const dbh = await createDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
    try {
      if (parsed.name !== 'migrate') await migrate(dbh.db);
      let kek: Kek | undefined;
      const ctx: CliContext = {
        config,
        db: dbh.db,
        clock: systemClock,
        passwords: createPasswordHasher(1, 4),
        notify: (channel, payload) => dbh.notify(channel, payload),
        getKek: () => (kek ??= loadKek({ kek: config.kek, kekFile: config.kekFile, embedded: isEmbedded(config) })),
      };
      return emit(await runParsed(parsed, ctx, stdin));
    } finally {
      await dbh.close();
    }
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message.split('\n')[0]}\n`);
    return 1;
  } finally {
    release();
  }
}

const FILE_OPTIONS = ['--jwks', '--pem', '--jwk'];

/** The server runs in another directory: make file options absolute before forwarding. */
function absolutizeFileOptions(argv: string[]): string[] {
  return argv.map((a, i) => {
    if (i > 0 && FILE_OPTIONS.includes(argv[i - 1]!) && !a.startsWith('-')) return path.resolve(a);
    const eq = FILE_OPTIONS.find((o) => a.startsWith(`${o}=`));
    return eq ? `${eq}=${path.resolve(a.slice(eq.length + 1))}` : a;
  });
}

function emit(r: CliResult): number {
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  return r.code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${(err as Error).message.split('\n')[0]}\n`);
    process.exitCode = 1;
  },
);

// start: config → runtime → app → listen; graceful close on SIGTERM/SIGINT.
// tracing first: it must be in place before fastify and pg are loaded (src/tracing.ts)
import { tracing } from './tracing.js';
import { pino } from 'pino';
import { ConfigError, loadConfig } from './core/config.js';
import { acquireDataDirLock } from './db/data-dir-lock.js';
import { describeKekSource, KekMismatch } from './keys/kek.js';
import { isEmbedded, openRuntime } from './ops/runtime.js';
import { buildApp } from './app.js';
import { serveCommands } from './cli/socket.js';
import { logFormat } from './http/logging.js';
import { nextSteps, readyFacts, readyMessage } from './ready-message.js';

/**
 * Where the log goes: stdout through a buffered destination (issue 14). pino's default writes each
 * line with its own synchronous write(2), about 30% of a cheap endpoint's throughput. This one
 * collects lines until 4 KiB are buffered (about 15 request lines) and writes them at once from
 * libuv's threads; every write is a round trip through the thread pool, and one per line still
 * cost about 20% of /userinfo's CPU. A line waits at most LOG_FLUSH_MS (50 ms) when the server is
 * quiet. pino flushes it synchronously on process exit, fatal errors included; a graceful shutdown
 * drains it (the write in flight too) before exiting, so that no line is lost on SIGTERM.
 */
const LOG_FLUSH_MS = 50;
const logStream = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: LOG_FLUSH_MS });

function drainLog(timeoutMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    logStream.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    logStream.end();
  });
}

function fail(message: string): never {
  process.stderr.write(`latchkey: ${message}\n`);
  process.exit(1);
}

async function start(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`);
    throw err;
  }

  let releaseLock = (): void => {};
  const embeddedOnDisk = isEmbedded(config) && config.databaseUrl !== 'memory:';
  if (embeddedOnDisk) {
    const lock = acquireDataDirLock(config.dataDir);
    if (!lock.acquired) fail(`the data directory ${config.dataDir} is in use by process ${lock.pid}; run one server per data directory, or use DATABASE_URL=postgres://… for replicas`);
    releaseLock = lock.release;
  }

  let rt;
  try {
    rt = await openRuntime(config, { onDbError: (err) => process.stderr.write(`${JSON.stringify({ level: 40, msg: 'database connection error', err: err.message })}\n`) });
  } catch (err) {
    releaseLock();
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`);
    if (err instanceof KekMismatch) fail(`${describeKekSource(config)} cannot decrypt the stored keys (they were sealed under another KEK); start with the KEK that sealed them`);
    fail(`cannot start: ${(err as Error).message.split('\n')[0]}`);
  }

  let app: Awaited<ReturnType<typeof buildApp>>;
  let socket: Awaited<ReturnType<typeof serveCommands>> | undefined;
  try {
    // a pino DestinationStream: all pino needs is write(), which SonicBoom has
    // (JSON only: the pretty lines for a person at a terminal stay synchronous, and coloured)
    app = await buildApp(rt, logFormat(config.logFormat) === 'pretty' ? {} : { logStream: logStream as unknown as NodeJS.WritableStream, logFormat: 'json' });
    const log = app.log;
    socket = embeddedOnDisk ? await serveCommands(config.dataDir, app.latchkeyOps, (err) => log.error({ err: err.message }, 'command socket error')) : undefined;
  } catch (err) {
    await rt.close().catch(() => {});
    releaseLock();
    fail(`cannot start: ${(err as Error).message.split('\n')[0]}`);
  }

  let closing = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      app.log.error('shutdown took too long; exiting');
      process.exit(1);
    }, 25000);
    force.unref();
    try {
      await socket?.close();
      await app.close();
      await rt.close();
      await tracing?.shutdown().catch(() => {});
    } finally {
      releaseLock();
    }
    await drainLog();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await rt.close().catch(() => {});
    releaseLock();
    fail(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
  }
  const facts = await readyFacts(rt, app.metricsAddress(), tracing !== undefined).catch(() => undefined);
  app.log.info({ issuer: config.issuer, database: rt.dbh.kind, metrics: facts?.metrics, next: facts && nextSteps(config, facts) }, 'latchkey ready');
  // for a person at a terminal (or LOG_FORMAT=pretty): the same, readable
  if (facts && logFormat(config.logFormat) === 'pretty') process.stdout.write(readyMessage(config, facts));
}

void start();

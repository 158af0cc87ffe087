// The log is written through a buffered destination (issue 14): SIGTERM right after a burst of
// requests must still leave one line per request in the built server's output, none lost in the
// buffer, and the process exits 0.
import crypto from 'node:crypto';
import http from 'node:http';
import t from 'tap';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { startServer } from '../helpers/process.js';
import { freePort, tempDir, TEST_KEK } from '../helpers/runtime.js';

t.teardown(dropCreatedDatabases);

const REQUESTS = 2000;
const CONCURRENCY = 50;

function get(agent: http.Agent, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

for (const backend of backends()) {
  t.test(`SIGTERM after a burst: every request has its log line (${backend.name})`, async (t) => {
    const port = await freePort();
    const server = await startServer({ PORT: String(port), DATABASE_URL: await backend.create(), LATCHKEY_KEK: TEST_KEK, CWD: tempDir(), LOG_LEVEL: 'info' });
    t.teardown(() => server.stop('SIGKILL'));

    const run = crypto.randomBytes(6).toString('hex');
    const paths = Array.from({ length: REQUESTS }, (_, i) => `/no-such-route-${run}-${i}`);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    let next = 0;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < paths.length) statuses.push(await get(agent, port, paths[next++]));
      }),
    );
    t.ok(
      statuses.every((s) => s === 404),
      `all ${REQUESTS} requests answered 404`,
    );
    // the signal follows the last answer at once: lines still in the buffer must be written out
    server.proc.kill('SIGTERM');
    agent.destroy();
    t.equal(await server.exited, 0, 'the process exits 0');

    const lines = server
      .stdout()
      .split('\n')
      .filter((l) => l.includes(`/no-such-route-${run}-`));
    const logged = new Set<string>();
    for (const l of lines) {
      const entry = JSON.parse(l) as { req?: { url?: string }; res?: { statusCode?: number }; msg?: string };
      if (entry.req?.url && entry.msg === 'request completed' && entry.res?.statusCode === 404) logged.add(entry.req.url);
    }
    const missing = paths.filter((p) => !logged.has(p));
    t.equal(missing.length, 0, `every request has its line (missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''})`);
    t.equal(lines.length, REQUESTS, 'and exactly one line each');
    t.ok(
      server.stdout().split('\n').filter(Boolean).every((l) => {
        try {
          JSON.parse(l);
          return true;
        } catch {
          return false;
        }
      }),
      'no line is torn or interleaved',
    );
    t.match(server.stdout(), /"signal":"SIGTERM"/, 'the shutdown line is there too');
  });
}

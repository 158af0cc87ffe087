// Which errors are a database outage (503) and which are not (a bug stays a 500, bad input a 400).
import t from 'tap';
import { DatabaseUnavailable, databaseUnavailableReason, isDatabaseUnavailable } from '../../src/db/errors.js';

const coded = (message: string, code: string) => Object.assign(new Error(message), { code });

t.test('outage errors', async (t) => {
  const cases: [string, unknown, string][] = [
    ['connection refused', coded('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'), 'connection'],
    ['connection reset', coded('read ECONNRESET', 'ECONNRESET'), 'connection'],
    ['refused on every address (AggregateError)', Object.assign(new AggregateError([coded('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], ''), {}), 'connection'],
    ['a connection lost mid-query (pg)', new Error('Connection terminated unexpectedly'), 'connection'],
    ['pg: connection timeout', new Error('Connection terminated due to connection timeout'), 'connection'],
    ['pool timeout (pg-pool)', new Error('timeout exceeded when trying to connect'), 'timeout'],
    ['client-side query timeout (pg)', new Error('Query read timeout'), 'timeout'],
    ['statement timeout (57014)', coded('canceling statement due to statement timeout', '57014'), 'timeout'],
    ['server shutting down (57P01)', coded('terminating connection due to administrator command', '57P01'), 'shutdown'],
    ['server starting (57P03)', coded('the database system is starting up', '57P03'), 'shutdown'],
    ['too many connections (53300)', coded('sorry, too many clients already', '53300'), 'resources'],
    ['disk full (53100)', coded('could not extend file "base/5/1": No space left on device', '53100'), 'disk_full'],
    ['ENOSPC from the file system', coded('ENOSPC: no space left on device, write', 'ENOSPC'), 'disk_full'],
    ['I/O error (58030)', coded('could not read block 0', '58030'), 'storage'],
    ['lost lock (ENOLCK)', coded('ENOLCK: no locks available', 'ENOLCK'), 'storage'],
    ['read-only standby after failover (25006)', coded('cannot execute UPDATE in a read-only transaction', '25006'), 'storage'],
    ['PGlite closed', new Error('PGlite is closed'), 'closed'],
    ['wrapped in a cause', new Error('query failed', { cause: coded('read ECONNRESET', 'ECONNRESET') }), 'connection'],
    ['our own refusal', new DatabaseUnavailable(), 'outage'],
  ];
  for (const [what, err, kind] of cases) t.equal(databaseUnavailableReason(err)?.kind, kind, what);
});

t.test('not outage errors', async (t) => {
  const cases: [string, unknown][] = [
    ['a bug', new TypeError("Cannot read properties of undefined (reading 'x')")],
    ['unique violation (23505)', coded('duplicate key value violates unique constraint', '23505')],
    ['serialization failure (40001)', coded('could not serialize access', '40001')],
    ['syntax error (42601)', coded('syntax error at or near "x"', '42601')],
    ['a plain string', 'ECONNREFUSED'],
    ['undefined', undefined],
  ];
  for (const [what, err] of cases) t.equal(isDatabaseUnavailable(err), false, what);
});

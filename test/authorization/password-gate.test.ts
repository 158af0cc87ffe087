// Password hashing runs with bounded concurrency: past the queue, logins get 503 + Retry-After
// instead of starving token signing of the thread pool.
import t from 'tap';
import { Gate } from '../../src/accounts/passwords.js';
import { TemporarilyUnavailable } from '../../src/core/errors.js';

t.test('the gate runs at most `limit` at once and refuses past the queue', async (t) => {
  const gate = new Gate(1, 1);
  let running = 0;
  let maxRunning = 0;
  const releases: Array<() => void> = [];
  const job = () =>
    gate.run(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((r) => releases.push(r));
      running--;
      return 'done';
    });
  const a = job();
  const b = job(); // queued
  const third = await job().catch((e: unknown) => e);
  t.match(third, { statusCode: 503, error: 'temporarily_unavailable' }, 'the third is refused: the queue holds one');
  const err = await job().catch((e: unknown) => e);
  t.ok(err instanceof TemporarilyUnavailable);
  t.equal((err as TemporarilyUnavailable).headers['retry-after'], '1');
  await new Promise((r) => setTimeout(r, 10));
  t.equal(releases.length, 1, 'only one runs');
  releases.shift()!();
  t.equal(await a, 'done');
  await new Promise((r) => setTimeout(r, 10));
  t.equal(releases.length, 1, 'the queued one runs next');
  releases.shift()!();
  t.equal(await b, 'done');
  t.equal(maxRunning, 1);
});

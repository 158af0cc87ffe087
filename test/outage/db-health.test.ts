// The outage state on its own (src/db/health.ts), with a probe the test controls: it probes at its
// interval, one probe at a time, and the replica serves again from the first successful probe,
// with nothing else to wait for (test/outage/postgres-cut.test.ts relies on that for its recovery).
// The grace is decided by the injected clock, not by elapsed time.
import t from 'tap';
import { ManualClock } from '../../src/core/clock.js';
import { DbHealth } from '../../src/db/health.js';
import { waitFor } from '../helpers/process.js';

const connectionError = (): Error => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

function setup(failures: number) {
  const clock = new ManualClock(1_700_000_000_000);
  const logs: { level: string; msg: string }[] = [];
  let probes = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let failing = failures;
  const health = new DbHealth({
    clock,
    graceSeconds: 30,
    probeIntervalMs: 5,
    backend: 'postgres',
    log: { warn: (_o, msg) => logs.push({ level: 'warn', msg }), info: (_o, msg) => logs.push({ level: 'info', msg }) },
    probe: async () => {
      probes++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
      if (failing > 0) {
        failing--;
        throw connectionError();
      }
      return 1;
    },
  });
  return { clock, health, logs, get probes() { return probes; }, get maxInFlight() { return maxInFlight; }, restore: () => { failing = 0; } };
}

const until = (cond: () => boolean) => waitFor(async () => (cond() ? true : undefined), 5000, 1);

t.test('a query failure begins an outage; the first successful probe ends it', async (t) => {
  const s = setup(4);
  t.teardown(() => s.health.stop());
  t.equal(s.health.reportFailure(new Error('syntax error at or near "SELEC"')), false, 'an error that is not an outage error changes nothing');
  t.equal(s.health.reachable, true);
  t.equal(s.health.status(), undefined);

  t.equal(s.health.reportFailure(connectionError()), true, 'a connection error is an outage');
  t.equal(s.health.reachable, false);
  t.equal(s.health.servesFromMemory(), true, 'within the grace: memory answers');
  t.equal(s.health.pastGrace(), false);
  // more failures while probing start no second probe
  for (let i = 0; i < 5; i++) s.health.reportFailure(connectionError());

  await until(() => s.health.reachable);
  t.equal(s.probes, 5, 'four failed probes, then the first successful one: reachable from it, no further probe');
  t.equal(s.maxInFlight, 1, 'one probe at a time');
  t.equal(s.health.status(), undefined, 'the outage has ended (notifications never lost)');
  t.same(s.logs.map((l) => l.level), ['warn', 'info'], 'one warning for the outage, one line when it ends');
  await new Promise((r) => setTimeout(r, 30));
  t.equal(s.probes, 5, 'no probing once reachable');
});

t.test('past the grace by the clock, only the probe can end it', async (t) => {
  const s = setup(Number.MAX_SAFE_INTEGER);
  t.teardown(() => s.health.stop());
  s.health.reportFailure(connectionError());
  s.clock.advance(29);
  t.equal(s.health.servesFromMemory(), true, '29 s in: still within the grace');
  s.clock.advance(1);
  t.equal(s.health.servesFromMemory(), false, '30 s in: past it');
  t.equal(s.health.pastGrace(), true);
  t.equal(s.health.status()?.cached_state_age_seconds, 30);
  const before = s.probes;
  await until(() => s.probes >= before + 3);
  t.equal(s.health.pastGrace(), true, 'failing probes keep it past the grace');
  s.restore();
  await until(() => s.health.reachable);
  t.equal(s.health.pastGrace(), false, 'the first successful probe ends it, however long the outage was');
  t.equal(s.health.servesFromMemory(), false);
});

t.test('a lost notification connection: reachable again by the probe, the outage ends when it is back', async (t) => {
  const s = setup(2);
  t.teardown(() => s.health.stop());
  s.health.listenLost();
  t.equal(s.health.reachable, false, 'presumed unreachable until a probe says otherwise');
  await until(() => s.health.reachable);
  t.equal(s.probes, 3);
  t.equal(s.health.pastGrace(), false, 'queries answer again');
  t.equal(s.health.status()?.notifications_connected, false, 'but the outage lasts until notifications are back');
  s.health.listenBack();
  t.equal(s.health.status(), undefined);
});

t.test('stop() ends the probing', async (t) => {
  const s = setup(Number.MAX_SAFE_INTEGER);
  s.health.reportFailure(connectionError());
  await until(() => s.probes >= 2);
  s.health.stop();
  await new Promise((r) => setTimeout(r, 10));
  const after = s.probes;
  await new Promise((r) => setTimeout(r, 40));
  t.equal(s.probes, after, 'no probe after stop()');
});

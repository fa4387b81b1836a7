import { LocalPipeline } from '../harness/pipeline';
import { FaultSuite, persistentPlan, type Baseline } from './faults-support';

/**
 * Issue 6, faults at every AWS call — faults that do not go away. For each call a clean release
 * makes, one run where it fails on every attempt (a 5xx; an event is never delivered), and one
 * where the worker making it dies right after it succeeded (out of memory, a timeout, a lost
 * container: nothing after that call runs, not its audit write, not its catch blocks). Whatever
 * the run then does, it must end consistent (see faults-support.ts): compensated with nothing left
 * behind and a FAILED run item naming the stage, error and cause; or, after the release is live,
 * the documented non-compensating path; or absorbed (a lost completion is finished by the
 * reconciler, a crashed event-driven worker by Lambda's async retries).
 */
describe('persistent faults and crashes at every AWS call of a release', () => {
  let pipeline: LocalPipeline;
  let suite: FaultSuite;
  let clean: Baseline;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({ faults: true });
    suite = new FaultSuite(pipeline, 'fp');
    clean = await suite.baseline();
  }, 60_000);

  afterAll(async () => {
    if (suite) console.log(suite.summary());
    await pipeline?.stop();
  });

  it('ends every run consistent when one call fails for good, naming what failed', async () => {
    const failures: string[] = [];
    for (const site of clean.sites) {
      const result = await suite.run([persistentPlan(site)], { expect: clean.expected });
      const problems = [...result.problems];
      // A compensated run's cause carries the failed call's own error (here its injection marker).
      if (result.state === 'COMPENSATED' && !String(result.runItem?.errorCause).includes(site.site))
        problems.push(
          `errorCause does not say what failed: ${String(result.runItem?.errorCause).slice(0, 300)}`,
        );
      if (problems.length > 0)
        failures.push(
          `${site.site}: ${result.state} ${result.execution?.error ?? ''}${problems.map((p) => `\n    ${p}`).join('')}`,
        );
    }
    expect(failures).toEqual([]);
  }, 300_000);

  // Event-driven workers (command-completed, trigger, reconciler) are left out: a crash there is an
  // invocation error like any other, which Lambda's async retries absorb (the transient file makes
  // every such call fail past the SDK, after it took effect, and checks the retried invocation).
  it('ends every run consistent when a state worker dies right after one of its calls', async () => {
    const failures: string[] = [];
    const inStateWorkers = clean.sites.filter(
      (s) => s.layer === 'sdk' && !/^(commandCompleted|trigger|reconciler|harness)/.test(s.caller),
    );
    expect(inStateWorkers.length).toBeGreaterThan(40);
    for (const site of inStateWorkers) {
      const result = await suite.run([{ site: site.site, kind: 'crash', attempts: 1 }]);
      if (result.problems.length > 0)
        failures.push(
          `${site.site}: ${result.state} ${result.execution?.error ?? ''}${result.problems.map((p) => `\n    ${p}`).join('')}`,
        );
    }
    expect(failures).toEqual([]);
  }, 300_000);
});

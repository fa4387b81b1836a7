import { LocalPipeline } from '../harness/pipeline';
import { FaultSuite, persistentPlan, transientPlan, type Baseline } from './faults-support';
import type { CallRecord, FaultPlan } from '../harness/faults';

/**
 * Faults in the failure path itself. A release that fails at its last step before going live
 * (RecordRelease's first call fails for good) has made every kind of resource: compensation must
 * restore the listener, remove the log subscriptions, revoke the grant, deregister the AMI, delete
 * its snapshots and destroy the green stack, then record the failure, release the lock and notify.
 * Each call of that path (recorded from such a run, so a new one is covered without editing this
 * file) is then faulted on top: a transient fault must change nothing; a persistent one must leave
 * a run that says what it could not undo.
 */
describe('faults while compensating a failed release', () => {
  let pipeline: LocalPipeline;
  let suite: FaultSuite;
  let clean: Baseline;
  let failing: Baseline;
  let cause: FaultPlan;
  let compensationSites: CallRecord[];

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({ faults: true });
    suite = new FaultSuite(pipeline, 'fc');
    clean = await suite.baseline();
    const recordRelease = clean.sites.find((s) => s.caller === 'RecordRelease' && s.layer === 'sdk');
    if (!recordRelease) throw new Error('the clean run made no call from RecordRelease');
    cause = persistentPlan(recordRelease);
    failing = await suite.baseline([cause]);
    const inCleanRun = new Set(clean.sites.map((s) => s.site));
    compensationSites = failing.sites.filter((s) => !inCleanRun.has(s.site));
  }, 60_000);

  afterAll(async () => {
    if (suite) console.log(suite.summary());
    await pipeline?.stop();
  });

  it('undoes every kind of resource of a release that fails just before going live', () => {
    expect(failing.result.problems).toEqual([]);
    expect(failing.result.state).toBe('COMPENSATED');
    expect(failing.result.runItem).toMatchObject({ status: 'FAILED', failedStage: 'RecordRelease' });
    const undone = failing.result.items
      .filter((i) => i.type === 'UNDONE')
      .map((i) => (i.detail as { action: string }).action);
    expect(new Set(undone)).toEqual(
      new Set([
        'RESTORE_LISTENER',
        'DELETE_SUBSCRIPTION_FILTER',
        'REVOKE_GRANT',
        'DEREGISTER_IMAGE',
        'DELETE_SNAPSHOT',
        'DESTROY_STACK',
        // PublishAmiIds ran before RecordRelease: the app's latest-ami parameter is put back.
        'RESTORE_PARAMETER',
      ]),
    );
    expect(compensationSites.map((s) => s.caller)).toEqual(
      expect.arrayContaining(['Compensate', 'DestroyGreenStack', 'RecordFailure', 'NotifyFailure']),
    );
  });

  it('absorbs a transient fault at each call of compensation: the same undo, nothing left', async () => {
    const failures: string[] = [];
    for (const site of compensationSites) {
      const result = await suite.run([cause, transientPlan(site)], { expect: failing.expected });
      if (result.state !== 'COMPENSATED' || result.problems.length > 0)
        failures.push(
          `${site.site}: ${result.state} ${result.execution?.error ?? ''}${result.problems.map((p) => `\n    ${p}`).join('')}`,
        );
    }
    expect(failures).toEqual([]);
  }, 300_000);

  it('ends consistent when a call of compensation fails for good, reporting what is left', async () => {
    const failures: string[] = [];
    for (const site of compensationSites) {
      const result = await suite.run([cause, persistentPlan(site)]);
      if (result.problems.length > 0)
        failures.push(
          `${site.site}: ${result.state} ${result.execution?.error ?? ''}${result.problems.map((p) => `\n    ${p}`).join('')}`,
        );
    }
    expect(failures).toEqual([]);
  }, 300_000);
});

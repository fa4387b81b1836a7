import { LocalPipeline } from '../harness/pipeline';
import { FaultSuite, transientFailures, type Baseline } from './faults-support';

/**
 * Issue 6, faults at every AWS call — transient faults. A clean run is recorded call by call; then
 * each call it made is faulted in a run of its own, with the faults its layers are meant to absorb
 * (`transientPlan`): the SDK's retry strategy inside a worker, the ASL Retry blocks around each
 * Task state, Lambda's async retries for the event-driven workers, EventBridge's at-least-once
 * delivery. Every such run must succeed with the same audit records as the clean run, none twice.
 * A call added to the pipeline is covered by the next run of this file without editing it.
 */
describe('transient faults at every AWS call of a release', () => {
  let pipeline: LocalPipeline;
  let suite: FaultSuite;
  let clean: Baseline;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({ faults: true });
    suite = new FaultSuite(pipeline, 'ft');
    clean = await suite.baseline();
  }, 60_000);

  afterAll(async () => {
    if (suite) console.log(suite.summary());
    await pipeline?.stop();
  });

  it('records every call a clean release makes, at every layer', () => {
    expect(clean.sites.length).toBeGreaterThan(50);
    expect(new Set(clean.sites.map((s) => s.layer))).toEqual(new Set(['sdk', 'states', 'event']));
  });

  it('absorbs a transient fault at each call: the run succeeds with the same audit records', async () => {
    expect(await transientFailures(suite, clean.sites, clean.expected)).toEqual([]);
  }, 300_000);
});

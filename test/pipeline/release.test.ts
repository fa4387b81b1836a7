import { LocalPipeline } from '../harness/pipeline';
import { triggerMessage } from '../fixtures/messages';

/**
 * Post-provision on the real state machine: smoke test through the (local) ALB, weighted
 * blue-green shift with checks between steps, the live-release pointer, and the way back when a
 * check fails (blue at 100 % again, green destroyed, nothing orphaned).
 */
describe('release: smoke test, blue-green switch, live release', () => {
  let pipeline: LocalPipeline;
  let bucket: string;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start();
    bucket = pipeline.name('ArtifactsBucket');
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  const release = async (appId: string, version: string) => {
    pipeline.publishTrigger(triggerMessage(bucket, { appId, version, buildId: `${appId}-${version}` }));
    await pipeline.settle();
    const execution = pipeline.sfn
      .list()
      .find((e) => JSON.parse(e.input).version === version && JSON.parse(e.input).appId === appId);
    if (!execution) throw new Error(`no execution for ${appId} ${version}`);
    const runId = execution.name.split('-').pop()!;
    const items = await pipeline.runItems(runId);
    const output = JSON.parse(execution.output ?? '{}') as {
      stages?: Record<string, Record<string, unknown>>;
    };
    return { execution, runId, items, stages: output.stages ?? {} };
  };

  const greenOf = (runId: string) => pipeline.commands.stacks.get(runId)?.targetGroupArn;

  it('sends the first release straight to 100 % and makes it the live release', async () => {
    const first = await release('bg-app', '1.0.0');

    expect(first.execution.status).toBe('SUCCEEDED');
    expect(pipeline.elb.weights('bg-app')).toEqual({ [greenOf(first.runId)!]: 100 });
    expect(
      first.items
        .filter((i) => i.type === 'TRAFFIC_SHIFTED')
        .map((i) => (i.detail as { percent: number }).percent),
    ).toEqual([100]);
    expect(await pipeline.liveRelease('bg-app')).toMatchObject({
      runId: first.runId,
      version: '1.0.0',
      previousRunId: null,
    });
  });

  it('shifts the second release in steps of 10, 50 and 100 % and schedules the first for decommission', async () => {
    const [previous] = await pipeline.runsOf('bg-app');
    const second = await release('bg-app', '1.1.0');

    expect(second.execution.status).toBe('SUCCEEDED');
    const shifts = second.items
      .filter((i) => i.type === 'TRAFFIC_SHIFTED')
      .map((i) => (i.detail as { percent: number }).percent);
    expect(shifts.sort((a, b) => a - b)).toEqual([10, 50, 100]);
    expect(pipeline.elb.weights('bg-app')).toEqual({ [greenOf(second.runId)!]: 100 });
    expect(await pipeline.liveRelease('bg-app')).toMatchObject({
      runId: second.runId,
      version: '1.1.0',
      previousRunId: previous?.runId,
      targetGroupArn: greenOf(second.runId),
      amiId: second.stages.distribute?.amiId,
    });
    const previousItems = await pipeline.runItems(String(previous?.runId));
    expect(previousItems).toContainEqual(
      expect.objectContaining({
        type: 'DECOMMISSION_SCHEDULED',
        detail: expect.objectContaining({ replacedBy: second.runId }),
      }),
    );
    const timings = second.items.find((i) => i.type === 'STAGE_TIMINGS')?.detail as {
      seconds: Record<string, number>;
    };
    expect(Object.keys(timings.seconds)).toEqual([
      'preProvision',
      'bake',
      'provision',
      'validate',
      'trafficShift',
    ]);
    const [secondRun] = (await pipeline.runsOf('bg-app')).filter((r) => r.runId === second.runId);
    expect(secondRun).toMatchObject({ status: 'SUCCEEDED' });
    expect(JSON.parse(String(secondRun?.stageTimings))).toEqual(timings.seconds);
    expect(second.items).toContainEqual(
      expect.objectContaining({ entity: 'RESOURCE', resourceType: 'LISTENER_CHANGE' }),
    );
    // Within the 40-transition budget even with a three-step shift.
    expect(pipeline.path(second.execution.executionArn).length).toBeLessThanOrEqual(40);
  });

  it('decommissions the replaced release after its retention: stack destroyed, AMI retired, history kept', async () => {
    const [first, second] = (await pipeline.runsOf('bg-app')).sort((a, b) =>
      String(a.startedAt).localeCompare(String(b.startedAt)),
    );
    const firstRunId = String(first?.runId);
    const decommission = pipeline.decommissions.list().find((e) => e.name === `decommission-${firstRunId}`);

    expect(decommission?.status).toBe('SUCCEEDED');
    expect(pipeline.commands.stacks.has(firstRunId)).toBe(false);
    expect(pipeline.leftovers(firstRunId)).toEqual({
      images: [],
      snapshots: [],
      grants: [],
      stacks: [],
      runningCommands: [],
    });
    const retired = (await pipeline.runItems(firstRunId)).filter((i) => i.type === 'DECOMMISSIONED');
    expect(retired.map((i) => (i.detail as { action: string }).action).sort()).toEqual([
      'DELETE_SNAPSHOT',
      'DEREGISTER_IMAGE',
      'DESTROY_STACK',
      'RETIRE_RELEASE',
      'REVOKE_GRANT',
    ]);
    // Never deleted from the audit table: the old run and its inventory are all still there.
    expect(first).toMatchObject({ status: 'SUCCEEDED' });
    expect(
      (await pipeline.runItems(firstRunId)).filter((i) => i.entity === 'RESOURCE').length,
    ).toBeGreaterThan(5);
    expect(await pipeline.liveRelease('bg-app')).toMatchObject({ runId: second?.runId });
    expect(pipeline.commands.stacks.has(String(second?.runId))).toBe(true);
  });

  it('keeps blue at 100 % and removes green when the smoke test fails', async () => {
    await release('smoke-app', '1.0.0');
    const blue = pipeline.elb.weights('smoke-app');
    pipeline.elb.setScenario('smoke-app', { smokeStatus: 503 });

    const failed = await release('smoke-app', '2.0.0');

    expect(failed.execution.status).toBe('FAILED');
    expect(failed.execution.error).toBe('SmokeTestFailedError');
    expect(String(failed.execution.cause)).toContain('last: HTTP 503');
    expect(pipeline.elb.weights('smoke-app')).toEqual(blue);
    expect(pipeline.leftovers(failed.runId)).toEqual({
      images: [],
      snapshots: [],
      grants: [],
      stacks: [],
      runningCommands: [],
    });
    expect((await pipeline.liveRelease('smoke-app'))?.version).toBe('1.0.0');
    pipeline.elb.setScenario('smoke-app', {});
  });

  it('restores the previous weights, destroys green and keeps blue live when the 5xx check fails mid-shift', async () => {
    const first = await release('canary-app', '1.0.0');
    pipeline.elb.setScenario('canary-app', { errorsFromPercent: 50, errorRate: 0.2 });

    const failed = await release('canary-app', '2.0.0');

    expect(failed.execution.error).toBe('CanaryCheckFailedError');
    expect(String(failed.execution.cause)).toMatch(/at 50 %: green answered \d+ of \d+ requests with a 5xx/);
    const shifts = failed.items
      .filter((i) => i.type === 'TRAFFIC_SHIFTED')
      .map((i) => (i.detail as { percent: number }).percent);
    expect(shifts.sort((a, b) => a - b)).toEqual([10, 50]);
    expect(pipeline.elb.weights('canary-app')).toEqual({ [greenOf(first.runId)!]: 100 });
    expect(
      failed.items.filter((i) => i.type === 'UNDONE').map((i) => (i.detail as { action: string }).action),
    ).toEqual(
      expect.arrayContaining(['RESTORE_LISTENER', 'DESTROY_STACK', 'DEREGISTER_IMAGE', 'REVOKE_GRANT']),
    );
    expect(pipeline.leftovers(failed.runId)).toEqual({
      images: [],
      snapshots: [],
      grants: [],
      stacks: [],
      runningCommands: [],
    });
    expect(await pipeline.liveRelease('canary-app')).toMatchObject({ runId: first.runId, version: '1.0.0' });
    const [run] = (await pipeline.runsOf('canary-app')).filter((r) => r.runId === failed.runId);
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'TrafficShift',
      compensationStatus: 'COMPLETE',
    });
  });

  it('stops the shift when green targets turn unhealthy', async () => {
    const first = await release('health-app', '1.0.0');
    pipeline.elb.setScenario('health-app', { unhealthyFromPercent: 10 });

    const failed = await release('health-app', '2.0.0');

    expect(failed.execution.error).toBe('CanaryCheckFailedError');
    expect(String(failed.execution.cause)).toContain('at 10 %: 2 of 2 green targets are not healthy');
    expect(pipeline.elb.weights('health-app')).toEqual({ [greenOf(first.runId)!]: 100 });
  });
});

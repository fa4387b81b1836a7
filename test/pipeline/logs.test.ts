import { LocalPipeline } from '../harness/pipeline';
import type { TaskHook } from '../harness/sim/sfn';
import { triggerMessage } from '../fixtures/messages';

/**
 * Log export on the real state machine: after the traffic switch the app's log groups exist with
 * the stage key and their retention, each subscribed once to the logs delivery stream; a later
 * release re-applies the same subscription; a run that fails after ExportLogs takes its own
 * subscriptions away again and leaves the live release's alone.
 */
describe('release: app log groups exported through Firehose', () => {
  let pipeline: LocalPipeline;
  let bucket: string;
  let hook: TaskHook | undefined;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      beforeTask: (state, input, execution) => hook?.(state, input, execution),
    });
    bucket = pipeline.name('ArtifactsBucket');
  });

  afterEach(() => {
    hook = undefined;
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
    return { execution, runId, items: await pipeline.runItems(runId) };
  };

  /** Makes RecordRelease fail for one version: the last step before the release is live. */
  const failRecordReleaseOf = (version: string) => {
    hook = (state, _input, execution) => {
      if (state === 'RecordRelease' && execution.input.includes(`"version":"${version}"`)) {
        throw Object.assign(new Error('the live release changed during this run'), {
          name: 'AuditConflictError',
        });
      }
    };
  };

  const resources = (items: Record<string, unknown>[], type: string) =>
    items.filter((i) => i.entity === 'RESOURCE' && i.resourceType === type);

  const filtersOf = (logGroupName: string) => [
    ...(pipeline.logs.groups.get(logGroupName)?.filters.values() ?? []),
  ];

  it("creates the app's log group with the stage key and its retention, subscribed once to the delivery stream", async () => {
    const first = await release('logs-app', '1.0.0');

    expect(first.execution.status).toBe('SUCCEEDED');
    const path = pipeline.path(first.execution.executionArn);
    expect(path.indexOf('ExportLogs')).toBeGreaterThan(path.indexOf('ShiftTraffic'));
    expect(path.indexOf('ExportLogs')).toBeLessThan(path.indexOf('RecordRelease'));
    const group = pipeline.logs.groups.get('/app/logs-app/application');
    expect(group).toMatchObject({
      kmsKeyId: pipeline.template.resource('PipelineKey').arn,
      retentionInDays: 90,
      tags: { 'ami-pipeline:run-id': first.runId, 'ami-pipeline:app-id': 'logs-app' },
    });
    expect(filtersOf('/app/logs-app/application')).toEqual([
      {
        filterName: 'ami-pipeline-export',
        filterPattern: '',
        destinationArn: pipeline.template.resource('LogsDeliveryStream').arn,
        roleArn: pipeline.template.resource('LogsSubscriptionRole').arn,
      },
    ]);
    expect(resources(first.items, 'LOG_GROUP').map((r) => r.resourceId)).toEqual([
      '/app/logs-app/application',
    ]);
    expect(resources(first.items, 'LOG_SUBSCRIPTION').map((r) => r.resourceId)).toEqual([
      '/app/logs-app/application#ami-pipeline-export',
    ]);
    // Auditors find which runs subscribed a log group with one Query on byResource.
    expect(
      (await pipeline.byResource('/app/logs-app/application#ami-pipeline-export')).map((r) => r.runId),
    ).toEqual([first.runId]);
  });

  it('re-applies the same subscription on the next release instead of adding a second one', async () => {
    const second = await release('logs-app', '1.1.0');

    expect(second.execution.status).toBe('SUCCEEDED');
    expect(filtersOf('/app/logs-app/application')).toHaveLength(1);
    expect(resources(second.items, 'LOG_GROUP')).toEqual([]);
    expect(resources(second.items, 'LOG_SUBSCRIPTION')).toEqual([
      expect.objectContaining({
        detail: expect.objectContaining({ replaced: expect.objectContaining({ filterPattern: '' }) }),
      }),
    ]);
    expect(
      (await pipeline.byResource('/app/logs-app/application#ami-pipeline-export')).map((r) => r.runId),
    ).toHaveLength(2);
  });

  it('removes the subscription a first release added when the run fails after ExportLogs, and keeps the log group', async () => {
    failRecordReleaseOf('1.0.0');

    const failed = await release('logs-fail-app', '1.0.0');

    expect(failed.execution.status).toBe('FAILED');
    expect(failed.execution.error).toBe('AuditConflictError');
    expect(pipeline.path(failed.execution.executionArn)).toEqual(
      expect.arrayContaining(['ExportLogs', 'RecordReleaseFailed', 'Compensate']),
    );
    expect(filtersOf('/app/logs-fail-app/application')).toEqual([]);
    expect(pipeline.logs.groups.get('/app/logs-fail-app/application')?.kmsKeyId).toBe(
      pipeline.template.resource('PipelineKey').arn,
    );
    expect(
      failed.items.filter((i) => i.type === 'UNDONE').map((i) => (i.detail as { action: string }).action),
    ).toEqual(expect.arrayContaining(['DELETE_SUBSCRIPTION_FILTER', 'RESTORE_LISTENER', 'DESTROY_STACK']));
    const [run] = (await pipeline.runsOf('logs-fail-app')).filter((r) => r.runId === failed.runId);
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'RecordRelease',
      compensationStatus: 'COMPLETE',
    });
    expect(await pipeline.liveRelease('logs-fail-app')).toBeUndefined();
  });

  it("leaves the live release's subscription in place when a later run fails after ExportLogs", async () => {
    const live = await release('logs-keep-app', '1.0.0');
    failRecordReleaseOf('2.0.0');

    const failed = await release('logs-keep-app', '2.0.0');

    expect(failed.execution.error).toBe('AuditConflictError');
    expect(filtersOf('/app/logs-keep-app/application')).toEqual([
      expect.objectContaining({
        filterName: 'ami-pipeline-export',
        destinationArn: pipeline.template.resource('LogsDeliveryStream').arn,
      }),
    ]);
    expect(
      failed.items.filter((i) => i.type === 'UNDONE').map((i) => (i.detail as { action: string }).action),
    ).not.toContain('DELETE_SUBSCRIPTION_FILTER');
    expect(await pipeline.liveRelease('logs-keep-app')).toMatchObject({ runId: live.runId });
  });

  it('fails in ExportLogs and compensates when CloudWatch Logs refuses the subscription', async () => {
    const group = '/app/logs-full-app/application';
    // Two foreign filters already use the group's whole allowance: the service refuses a third.
    await release('logs-full-app', '1.0.0');
    const existing = pipeline.logs.groups.get(group);
    if (!existing) throw new Error(`${group} was not created`);
    existing.filters.clear();
    for (const filterName of ['team-a', 'team-b']) {
      existing.filters.set(filterName, {
        filterName,
        filterPattern: '',
        destinationArn: 'arn:aws:lambda:eu-west-1:000000000000:function:elsewhere',
        roleArn: '',
      });
    }

    const failed = await release('logs-full-app', '2.0.0');

    expect(failed.execution.error).toBe('LogExportFailedError');
    expect(String(failed.execution.cause)).toContain(`log group ${group}: LimitExceededException`);
    const [run] = (await pipeline.runsOf('logs-full-app')).filter((r) => r.runId === failed.runId);
    expect(run).toMatchObject({ failedStage: 'ExportLogs', compensationStatus: 'COMPLETE' });
    expect(
      filtersOf(group)
        .map((f) => f.filterName)
        .sort(),
    ).toEqual(['team-a', 'team-b']);
    expect((await pipeline.liveRelease('logs-full-app'))?.version).toBe('1.0.0');
  });
});

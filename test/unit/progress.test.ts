import { PIPELINE_STAGES, runProgress } from '../../shared/progress';

const T0 = '2026-11-21T10:00:00.000Z';
const at = (seconds: number) => new Date(Date.parse(T0) + seconds * 1000).toISOString();
const event = (type: string, seconds: number, extra: Record<string, unknown> = {}) => ({
  entity: 'EVENT',
  type,
  at: at(seconds),
  ...extra,
});
const resource = (resourceType: string, resourceId: string, seconds: number, detail?: object) => ({
  entity: 'RESOURCE',
  resourceType,
  resourceId,
  createdAt: at(seconds),
  ...(detail ? { detail } : {}),
});

/** Everything a successful run records, in the order the workers write it. */
const fullRun = [
  event('PRE_PROVISIONED', 10),
  resource('AMI', 'ami-0123456789abcdef0', 600),
  event('COMMAND_SUCCESS', 601, { stage: 'bake', detail: { mode: 'build' } }),
  resource('LAUNCH_PERMISSION', 'ami-0123456789abcdef0/111122223333', 620, { account: '111122223333' }),
  resource('KMS_GRANT', 'grant-1', 630),
  resource('ASG', 'sample-app-run', 900),
  event('COMMAND_SUCCESS', 901, { stage: 'provision', detail: { mode: 'apply' } }),
  resource('INSPEC_REPORT', 's3://reports/x.json', 1200, { passed: 120, failed: 1, skipped: 3 }),
  event('COMMAND_SUCCESS', 1201, { stage: 'validate', detail: { mode: 'validate' } }),
  event('TRAFFIC_SHIFTED', 1260, { detail: { percent: 10 } }),
  event('TRAFFIC_SHIFTED', 1560, { detail: { percent: 50 } }),
  event('TRAFFIC_SHIFTED', 1860, { detail: { percent: 100 } }),
  resource('LOG_SUBSCRIPTION', '/app/sample-app/application#export', 1870),
  event('RELEASE_LIVE', 1880),
];

const states = (progress: ReturnType<typeof runProgress>) =>
  Object.fromEntries(progress.map((p) => [p.stage, p.state]));

describe('runProgress', () => {
  it('times every stage of a successful run from the milestone before it', () => {
    const progress = runProgress({ status: 'SUCCEEDED', startedAt: T0 }, fullRun);

    expect(progress.map((p) => p.stage)).toEqual([...PIPELINE_STAGES]);
    expect(progress.every((p) => p.state === 'done')).toBe(true);
    expect(Object.fromEntries(progress.map((p) => [p.stage, p.seconds]))).toEqual({
      AcquireLock: undefined,
      PreProvision: 10,
      Bake: 591,
      Distribute: 29,
      Provision: 271,
      Validate: 300,
      SmokeTest: 59,
      TrafficShift: 600,
      ExportLogs: 10,
      RecordRelease: 10,
    });
    expect(progress.find((p) => p.stage === 'Bake')?.detail).toBe('ami-0123456789abcdef0');
    expect(progress.find((p) => p.stage === 'Validate')?.detail).toBe(
      'InSpec 120 passed, 1 failed, 3 skipped',
    );
    expect(progress.find((p) => p.stage === 'TrafficShift')?.detail).toBe('10 → 50 → 100 %');
  });

  it('shows a running run at the first stage without a milestone, later stages pending', () => {
    const progress = runProgress({ status: 'RUNNING', startedAt: T0 }, fullRun.slice(0, 5));

    expect(states(progress)).toMatchObject({
      AcquireLock: 'done',
      PreProvision: 'done',
      Bake: 'done',
      Distribute: 'done',
      Provision: 'running',
      Validate: 'pending',
      RecordRelease: 'pending',
    });
  });

  it('a run waiting for its lock is at AcquireLock', () => {
    expect(states(runProgress({ status: 'RUNNING', startedAt: T0 }, []))).toMatchObject({
      AcquireLock: 'running',
      PreProvision: 'pending',
    });
  });

  it('marks the failed stage (from failedStage or a failed command) and skips the rest', () => {
    const failed = runProgress({ status: 'FAILED', startedAt: T0, failedStage: 'Bake' }, [
      event('PRE_PROVISIONED', 10),
      event('COMMAND_FAILED', 300, { stage: 'bake', detail: { mode: 'build' } }),
      event('UNDONE', 320, { stage: 'Compensate' }),
    ]);

    expect(states(failed)).toMatchObject({
      PreProvision: 'done',
      Bake: 'failed',
      Distribute: 'skipped',
      RecordRelease: 'skipped',
    });
    expect(failed.find((p) => p.stage === 'Bake')?.seconds).toBe(290);
  });

  it('a stage whose milestone exists can still be the failed one (InSpec over its limit)', () => {
    const items = fullRun.slice(0, 9);
    const progress = runProgress({ status: 'FAILED', startedAt: T0, failedStage: 'Validate' }, items);

    expect(states(progress)).toMatchObject({ Provision: 'done', Validate: 'failed', SmokeTest: 'skipped' });
  });

  it('ignores the destroy of compensation or decommission when timing Provision', () => {
    const progress = runProgress({ status: 'FAILED', startedAt: T0, failedStage: 'Validate' }, [
      ...fullRun.slice(0, 9),
      event('COMMAND_SUCCESS', 5000, { stage: 'provision', detail: { mode: 'destroy' } }),
    ]);

    expect(progress.find((p) => p.stage === 'Provision')?.endedAt).toBe(at(901));
  });

  it('clamps a completion recorded after the next stage had already ended', () => {
    // The bake's completion answered the task token, Distribute ran, then the event was written.
    const progress = runProgress({ status: 'RUNNING', startedAt: T0 }, [
      event('PRE_PROVISIONED', 10),
      event('COMMAND_SUCCESS', 640, { stage: 'bake', detail: { mode: 'build' } }),
      resource('KMS_GRANT', 'grant-1', 630),
    ]);

    const bake = progress.find((p) => p.stage === 'Bake');
    const distribute = progress.find((p) => p.stage === 'Distribute');
    expect(bake?.endedAt).toBe(at(630));
    expect(distribute?.seconds).toBe(0);
  });

  it('an app without log groups ends ExportLogs with its release', () => {
    const withoutLogs = fullRun.filter(
      (i) => !('resourceType' in i) || i.resourceType !== 'LOG_SUBSCRIPTION',
    );
    const exportLogs = runProgress({ status: 'SUCCEEDED', startedAt: T0 }, withoutLogs).find(
      (p) => p.stage === 'ExportLogs',
    );

    expect(exportLogs).toMatchObject({ state: 'done', detail: 'no log groups', endedAt: at(1880) });
  });
});

import { LocalPipeline } from '../harness/pipeline';
import { sampleAppConfig, triggerMessage } from '../fixtures/messages';

const HAPPY_PATH = [
  'Initialize',
  'AcquireLock',
  'PreProvision',
  'Bake',
  'Distribute',
  // The sample app asks for no other region: the Map has no items.
  'DistributeToRegions',
  'AnyCopies',
  'Provision',
  'Validate',
  // Approval is not required in dev: the Choice goes straight on.
  'NeedsApproval',
  'SmokeTest',
  'PrepareTraffic',
  'ShiftTraffic',
  'ShiftStep',
  'Soak',
  'CheckStep',
  'ExportLogs',
  'PublishAmiIds',
  'RecordRelease',
  'ReleaseLock',
  'RecordSuccess',
  'BuildSuccessNotification',
  'NotifySuccess',
  'Succeeded',
];

describe('pipeline (real state machine, real handlers, local AWS)', () => {
  let pipeline: LocalPipeline;
  let bucket: string;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start();
    bucket = pipeline.name('ArtifactsBucket');
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  const executionsOf = (appId: string) =>
    pipeline.sfn.list().filter((e) => e.name.startsWith(`${appId}-dev-`));

  it('runs a release end to end, stores the run config encrypted and audits the run as SUCCEEDED', async () => {
    const secret = 'planted-secret-5f1c2e';
    const appConfig = sampleAppConfig({
      appId: 'happy-app',
      bake: { chefAttributes: { db: { password: secret } } },
    });
    pipeline.publishTrigger(triggerMessage(bucket, { appId: 'happy-app', appConfig }));

    await pipeline.settle();

    const [execution, ...others] = executionsOf('happy-app');
    expect(others).toHaveLength(0);
    expect(execution?.status).toBe('SUCCEEDED');
    expect(pipeline.path(execution!.executionArn)).toEqual(HAPPY_PATH);

    const [run] = await pipeline.runsOf('happy-app');
    expect(run).toMatchObject({
      status: 'SUCCEEDED',
      appId: 'happy-app',
      environment: 'dev',
      version: '1.4.2',
      buildId: 'happy-app-build-1',
      requestedBy: 'jenkins@example.com',
      executionArn: execution!.executionArn,
    });
    expect(run?.finishedAt).toEqual(expect.any(String));

    const runId = String(run?.runId);
    const parameterName = `/ami-pipeline/dev/happy-app/${runId}`;
    const items = await pipeline.runItems(runId);
    expect(items.map((i) => i.sk)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^EVENT#.*#PRE_PROVISIONED$/),
        `RESOURCE#PARAMETER#${parameterName}`,
      ]),
    );
    const [resource] = await pipeline.byResource(parameterName);
    expect(resource).toMatchObject({
      runId,
      executionArn: execution!.executionArn,
      buildId: 'happy-app-build-1',
    });

    const stored = pipeline.ssm.describe(parameterName);
    expect(stored).toMatchObject({
      type: 'SecureString',
      tier: 'Standard',
      keyId: pipeline.template.resource('PipelineKey').arn,
    });
    expect(stored?.tags).toEqual({
      'ami-pipeline:run-id': runId,
      'ami-pipeline:app-id': 'happy-app',
      'ami-pipeline:stage': 'dev',
    });
    expect(stored?.stored).not.toContain(secret);
    const runConfig = JSON.parse(
      pipeline.ssm.getParameter({ Name: parameterName, WithDecryption: true }).Parameter?.Value ?? '{}',
    );
    expect(runConfig.app.bake.chefAttributes.db.password).toBe(secret);
    expect(runConfig.release).toMatchObject({ appId: 'happy-app', version: '1.4.2', environment: 'dev' });

    // Only names travel: the secret is in no execution input/output and no notification.
    expect(execution!.input).not.toContain(secret);
    expect(execution!.output).not.toContain(secret);
    expect(JSON.stringify(pipeline.outcomes())).not.toContain(secret);

    expect(await pipeline.lockItem('happy-app', 'dev')).toBeUndefined();
    expect(pipeline.outcomes()).toContainEqual(
      expect.objectContaining({
        status: 'SUCCEEDED',
        appId: 'happy-app',
        runId,
        runConfigParameter: parameterName,
      }),
    );
  });

  it('fails a run whose app config breaks platform rules, listing every violation, and leaves nothing locked', async () => {
    const appConfig = sampleAppConfig({
      appId: 'rules-app',
      runtime: { instanceType: 'm5.24xlarge', maxSize: 50 },
      services: ['s3', 'iam'],
      tags: { 'data-classification': 'top-secret' },
    });
    pipeline.publishTrigger(triggerMessage(bucket, { appId: 'rules-app', appConfig }));

    await pipeline.settle();

    const [execution] = executionsOf('rules-app');
    expect(execution?.status).toBe('FAILED');
    expect(execution?.error).toBe('AppConfigInvalidError');
    expect(pipeline.path(execution!.executionArn)).toEqual([
      'Initialize',
      'AcquireLock',
      'PreProvision',
      'PreProvisionFailed',
      'Compensate',
      'NeedsStackDestroy',
      'RecordFailure',
      'ReleaseLockAfterFailure',
      'BuildFailureNotification',
      'NotifyFailure',
      'RunFailed',
    ]);

    const [run] = await pipeline.runsOf('rules-app');
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'PreProvision',
      errorName: 'AppConfigInvalidError',
    });
    const cause = String(run?.errorCause);
    for (const field of [
      'appConfig.runtime.instanceType',
      'appConfig.runtime.maxSize',
      'appConfig.services[1]',
      'appConfig.tags.data-classification',
    ]) {
      expect(cause).toContain(field);
    }
    expect(pipeline.ssm.names().filter((n) => n.includes('/rules-app/'))).toEqual([]);
    expect(await pipeline.lockItem('rules-app', 'dev')).toBeUndefined();
    expect(pipeline.outcomes()).toContainEqual(
      expect.objectContaining({
        status: 'FAILED',
        appId: 'rules-app',
        failedStage: 'PreProvision',
        error: 'AppConfigInvalidError',
      }),
    );
  });

  it('fails in PreProvision with AppConfigNotFoundError when the referenced app config does not exist', async () => {
    const message = {
      ...triggerMessage(bucket, { appId: 'lost-app' }),
      appConfig: { s3Uri: `s3://${bucket}/inputs/lost-app/never-uploaded.yml` },
    };
    pipeline.publishTrigger(message);

    await pipeline.settle();

    const [execution] = executionsOf('lost-app');
    expect(execution?.status).toBe('FAILED');
    expect(execution?.error).toBe('AppConfigNotFoundError');
    const [run] = await pipeline.runsOf('lost-app');
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'PreProvision',
      errorName: 'AppConfigNotFoundError',
    });
    expect(String(run?.errorCause)).toContain('inputs/lost-app/never-uploaded.yml does not exist');
    expect(await pipeline.lockItem('lost-app', 'dev')).toBeUndefined();
  });

  it('starts exactly one run for a message delivered several times, during and after the run', async () => {
    const message = triggerMessage(bucket, { appId: 'dup-app' });
    const first = pipeline.publishTrigger(message);
    pipeline.sns.redeliver(first); // SNS at-least-once: same message id, while the run is in flight
    pipeline.publishTrigger(message); // Jenkins retried its publish: new message id, same build
    await pipeline.settle();
    pipeline.sns.redeliver(first); // and once more after the run has ended
    await pipeline.settle();

    expect(executionsOf('dup-app')).toHaveLength(1);
    expect(executionsOf('dup-app')[0]?.status).toBe('SUCCEEDED');
    expect(await pipeline.runsOf('dup-app')).toHaveLength(1);
    expect(await pipeline.rejections()).not.toContainEqual(expect.objectContaining({ appId: 'dup-app' }));
    expect(pipeline.sqs.messages(pipeline.name('TriggerDeadLetterQueue'))).toEqual([]);
  });

  it('rejects a reused build id with different content instead of starting or ignoring it', async () => {
    pipeline.publishTrigger(triggerMessage(bucket, { appId: 'reuse-app', version: '1.0.0' }));
    await pipeline.settle();
    pipeline.publishTrigger(triggerMessage(bucket, { appId: 'reuse-app', version: '2.0.0' }));
    await pipeline.settle();

    expect(executionsOf('reuse-app')).toHaveLength(1);
    const rejections = (await pipeline.rejections()).filter((r) => r.appId === 'reuse-app');
    expect(rejections).toHaveLength(1);
    expect(String(rejections[0]?.reason)).toMatch(/^buildId: .* different content/);
    expect(pipeline.rejectionsQueue().map((m) => JSON.parse(m.body).reason)).toContainEqual(
      expect.stringMatching(/^buildId: "reuse-app-build-1"/),
    );
  });

  it('keeps a malformed message in the rejections queue and the audit table and starts nothing', async () => {
    const before = pipeline.sfn.list().length;
    const bad = { ...triggerMessage(bucket, { appId: 'bad-app' }), appId: 'Bad_App', version: 'v 1' };
    const published = pipeline.publishTrigger(bad);
    pipeline.publishTrigger('{"schemaVersion": 1, "appId": "trunc');
    await pipeline.settle();

    expect(pipeline.sfn.list()).toHaveLength(before);
    const queued = pipeline.rejectionsQueue().map((m) => JSON.parse(m.body) as Record<string, unknown>);
    const forBad = queued.find((m) => m.snsMessageId === published.messageId);
    expect(forBad?.reason).toMatch(/appId: must match/);
    expect(forBad?.reason).toMatch(/version: must match/);
    expect(forBad?.message).toBe(JSON.stringify(bad));
    expect(queued).toContainEqual(
      expect.objectContaining({ reason: expect.stringMatching(/^\(message\): is not valid JSON/) }),
    );

    const audited = await pipeline.rejections();
    expect(audited).toContainEqual(
      expect.objectContaining({ status: 'REJECTED', messageId: published.messageId, reason: forBad?.reason }),
    );
  });
});

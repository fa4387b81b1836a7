import { LocalPipeline } from '../harness/pipeline';
import { triggerMessage } from '../fixtures/messages';

/**
 * The SSM-driven stages (Bake, Distribute, Provision, Validate) on the real state machine and the
 * real workers: the simulated SSM "runs" each command, writes its result.json and emits the
 * status-change event; failures are compensated and must leave nothing behind.
 */
describe('bake, distribute, provision and validate', () => {
  let pipeline: LocalPipeline;
  let bucket: string;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start();
    bucket = pipeline.name('ArtifactsBucket');
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  const runOf = async (appId: string) => {
    pipeline.publishTrigger(triggerMessage(bucket, { appId }));
    await pipeline.settle();
    const executions = pipeline.sfn.list().filter((e) => e.name.startsWith(`${appId}-dev-`));
    expect(executions).toHaveLength(1);
    const execution = executions[0]!;
    const runId = execution.name.split('-').pop()!;
    const [run] = await pipeline.runsOf(appId);
    const items = await pipeline.runItems(runId);
    const resources = (type: string) =>
      items.filter((i) => i.entity === 'RESOURCE' && i.resourceType === type);
    const events = (type: string) => items.filter((i) => i.entity === 'EVENT' && i.type === type);
    return { execution, runId, run, items, resources, events };
  };

  const expectNothingLeft = (runId: string) => {
    expect(pipeline.leftovers(runId)).toEqual({
      images: [],
      snapshots: [],
      grants: [],
      stacks: [],
      runningCommands: [],
    });
  };

  it('bakes an encrypted AMI, shares it, provisions and validates the green stack, and inventories all of it', async () => {
    const { execution, runId, run, resources, events } = await runOf('stage-app');

    expect(execution.status).toBe('SUCCEEDED');
    expect(run).toMatchObject({ status: 'SUCCEEDED' });
    const output = JSON.parse(execution.output ?? '{}') as {
      stages: Record<string, Record<string, unknown>>;
    };
    const amiId = String(output.stages.distribute?.amiId);
    const image = pipeline.ec2.images.get(amiId);
    expect(image).toMatchObject({ encrypted: true, kmsKeyId: pipeline.template.resource('PipelineKey').arn });
    expect([...(image?.launchPermissions ?? [])]).toEqual(['111122223333']);
    expect(image?.tags).toMatchObject({
      'ami-pipeline:run-id': runId,
      'ami-pipeline:app-id': 'stage-app',
      'ami-pipeline:version': '1.4.2',
    });
    const snapshotId = image!.snapshotIds[0]!;
    expect([...(pipeline.ec2.snapshots.get(snapshotId)?.createVolumePermissions ?? [])]).toEqual([
      '111122223333',
    ]);
    const [grant] = [...pipeline.kms.grants.values()].filter((g) => g.name === `ami-pipeline-${runId}`);
    expect(grant).toMatchObject({ grantee: 'arn:aws:iam::111122223333:root' });
    expect(grant?.operations).not.toContain('Encrypt');
    expect(pipeline.commands.stacks.get(runId)).toMatchObject({ asgName: output.stages.provision?.asgName });

    for (const type of [
      'AMI',
      'SNAPSHOT',
      'LAUNCH_PERMISSION',
      'SNAPSHOT_PERMISSION',
      'KMS_GRANT',
      'LAUNCH_TEMPLATE',
      'ASG',
      'TARGET_GROUP',
      'TERRAFORM_STATE',
      'INSPEC_REPORT',
    ]) {
      expect(resources(type).length).toBeGreaterThan(0);
    }
    expect(resources('AMI').map((r) => r.resourceId)).toEqual([amiId]);
    expect(events('COMMAND_SUCCESS')).toHaveLength(3);
    expect(await pipeline.byResource(amiId)).toEqual([
      expect.objectContaining({ runId, executionArn: execution.executionArn }),
    ]);
  });

  it('never lets a task token leave the coordination table', async () => {
    const { execution, runId, items } = await runOf('token-app');

    // Tokens are 128 base64url characters; none may appear in what SSM, the audit table or the execution saw.
    const tokenLike = /[A-Za-z0-9_-]{120,}/;
    const commands = [...pipeline.commands.commands.values()].filter((c) => c.comment.includes(runId));
    expect(commands).toHaveLength(3);
    for (const command of commands)
      expect(JSON.stringify(command.parameters) + command.comment).not.toMatch(tokenLike);
    expect(JSON.stringify(items)).not.toMatch(tokenLike);
    expect(execution.output).not.toMatch(tokenLike);
    expect(pipeline.sfn.pendingTokens()).toBe(0);
  });

  it('compensates a bake that failed after Packer made an AMI: the tagged AMI and snapshot are removed', async () => {
    pipeline.commands.setScenario('bake-fail-app', 'bake', { outcome: 'fail-after-ami' });

    const { execution, runId, run, events } = await runOf('bake-fail-app');

    expect(execution.status).toBe('FAILED');
    expect(execution.error).toBe('BakeFailedError');
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'Bake',
      errorName: 'BakeFailedError',
      compensationStatus: 'COMPLETE',
    });
    expect(String(run?.errorCause)).toContain('could not upload the packer manifest: AccessDenied');
    expect(pipeline.path(execution.executionArn)).toEqual(
      expect.arrayContaining(['BakeFailed', 'Compensate', 'RecordFailure']),
    );
    expect(pipeline.path(execution.executionArn)).not.toContain('DestroyGreenStack');
    expect(
      events('UNDONE')
        .map((e) => (e.detail as { action: string }).action)
        .sort(),
    ).toEqual(['DELETE_SNAPSHOT', 'DEREGISTER_IMAGE']);
    expectNothingLeft(runId);
    expect(await pipeline.lockItem('bake-fail-app', 'dev')).toBeUndefined();
  });

  it('fails the bake when Packer exits 0 without an AMI, naming that in the cause', async () => {
    pipeline.commands.setScenario('no-ami-app', 'bake', { outcome: 'no-ami' });

    const { execution, runId, run } = await runOf('no-ami-app');

    expect(execution.error).toBe('BakeFailedError');
    expect(String(run?.errorCause)).toContain('produced no AMI');
    expectNothingLeft(runId);
  });

  it('fails the bake when the command succeeds with a result.json that breaks its schema', async () => {
    pipeline.commands.setScenario('bad-result-app', 'bake', { outcome: 'bad-result' });

    const { execution, runId, run } = await runOf('bad-result-app');

    expect(execution.error).toBe('BakeFailedError');
    expect(String(run?.errorCause)).toMatch(/bake result.json rejected: result.(snapshotIds|region)/);
    expectNothingLeft(runId);
  });

  it('rolls everything back when InSpec finds more failed controls than the app allows', async () => {
    pipeline.commands.setScenario('inspec-app', 'validate', { outcome: 'success', failedControls: 7 });

    const { execution, runId, run, events } = await runOf('inspec-app');

    expect(execution.error).toBe('ValidationFailedError');
    expect(String(run?.errorCause)).toContain('InSpec: 7 failed controls exceed the allowed 2');
    expect(run).toMatchObject({ failedStage: 'Validate', compensationStatus: 'COMPLETE' });
    expect(pipeline.path(execution.executionArn)).toEqual(
      expect.arrayContaining([
        'ValidateFailed',
        'Compensate',
        'NeedsStackDestroy',
        'DestroyGreenStack',
        'RecordFailure',
      ]),
    );
    expect(
      events('UNDONE')
        .map((e) => (e.detail as { action: string }).action)
        .sort(),
    ).toEqual(['DELETE_SNAPSHOT', 'DEREGISTER_IMAGE', 'DESTROY_STACK', 'REVOKE_GRANT']);
    expectNothingLeft(runId);
  });

  it('destroys a half-applied green stack when terraform apply fails', async () => {
    pipeline.commands.setScenario('tf-fail-app', 'provision', { outcome: 'fail' });

    const { execution, runId, run } = await runOf('tf-fail-app');

    expect(execution.error).toBe('ProvisionFailedError');
    expect(String(run?.errorCause)).toContain('terraform apply: Error: creating Auto Scaling Group');
    expect(pipeline.path(execution.executionArn)).toContain('DestroyGreenStack');
    expectNothingLeft(runId);
  });

  it('records and alerts an incomplete compensation when the green stack cannot be destroyed', async () => {
    pipeline.commands.setScenario('stuck-stack-app', 'provision', { outcome: 'fail' });
    pipeline.commands.setScenario('stuck-stack-app', 'destroy', { outcome: 'fail' });

    const { execution, runId, run } = await runOf('stuck-stack-app');

    expect(execution.error).toBe('ProvisionFailedError');
    expect(run).toMatchObject({ compensationStatus: 'INCOMPLETE' });
    const alert = pipeline.sns
      .messages(pipeline.name('OutcomeTopic'))
      .find((m) => m.attributes.appId === 'stuck-stack-app');
    expect(alert?.attributes).toMatchObject({ status: 'FAILED', compensation: 'INCOMPLETE' });
    expect(pipeline.leftovers(runId).stacks).toEqual([runId]); // what is left is known and reported
  });

  it('replaces an AMI that is not encrypted with the stage key by an encrypted copy', async () => {
    pipeline.commands.setScenario('plain-ami-app', 'bake', { outcome: 'success', unencrypted: true });

    const { execution, runId, resources, events } = await runOf('plain-ami-app');

    expect(execution.status).toBe('SUCCEEDED');
    const images = [...pipeline.ec2.images.values()].filter((i) => i.tags['ami-pipeline:run-id'] === runId);
    expect(images).toHaveLength(1);
    expect(images[0]).toMatchObject({
      encrypted: true,
      kmsKeyId: pipeline.template.resource('PipelineKey').arn,
    });
    const [baked] = resources('AMI').filter((r) => r.resourceId !== images[0]?.imageId);
    expect(pipeline.ec2.images.has(String(baked?.resourceId))).toBe(false);
    expect(events('UNENCRYPTED_AMI_REPLACED')).toHaveLength(1);
  });

  it('completes a stage whose status-change event was lost, through the reconciler', async () => {
    pipeline.commands.setScenario('lost-event-app', 'bake', { outcome: 'success', loseEvent: true });
    pipeline.publishTrigger(triggerMessage(bucket, { appId: 'lost-event-app' }));
    await pipeline.until(
      () =>
        [...pipeline.commands.commands.values()].some(
          (c) => c.parameters.runConfigParameter?.includes('/lost-event-app/') && c.status === 'Success',
        ),
      'the bake command to finish',
    );
    const [waiting] = pipeline.sfn.list().filter((e) => e.name.startsWith('lost-event-app-dev-'));
    expect(waiting?.status).toBe('RUNNING');

    await pipeline.reconcile();
    await pipeline.settle();

    expect(pipeline.sfn.get(waiting!.executionArn).status).toBe('SUCCEEDED');
  });

  it('costs the same number of state transitions for a 5-minute and a 5-hour bake', async () => {
    pipeline.commands.setScenario('short-bake-app', 'bake', { outcome: 'success', simulatedSeconds: 300 });
    pipeline.commands.setScenario('long-bake-app', 'bake', {
      outcome: 'success',
      simulatedSeconds: 5 * 3600,
    });

    const short = await runOf('short-bake-app');
    const long = await runOf('long-bake-app');

    const transitions = (arn: string) => pipeline.path(arn).length;
    expect(short.execution.status).toBe('SUCCEEDED');
    expect(long.execution.status).toBe('SUCCEEDED');
    expect(transitions(long.execution.executionArn)).toBe(transitions(short.execution.executionArn));
  });
});

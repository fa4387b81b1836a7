import { LocalPipeline } from '../harness/pipeline';
import { triggerMessage } from '../fixtures/messages';

// A file of its own: handlers keep the clients of the first harness in a file, and this one needs
// a stage config whose approval times out after 2 seconds.
describe('an approval nobody gives in time', () => {
  let pipeline: LocalPipeline;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      stageOverrides: { approval: { required: true, timeoutSeconds: 2 } },
    });
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  it('times out, compensates like any failure, leaves nothing behind and answers a late approval with 410', async () => {
    pipeline.publishTrigger(triggerMessage(pipeline.name('ArtifactsBucket'), { appId: 'unanswered-app' }));
    await pipeline.until(() => pipeline.sfn.list().length > 0, 'the execution');
    const execution = pipeline.sfn.list()[0]!;
    const runId = execution.name.split('-').pop()!;
    await pipeline.untilAwaitingApproval(runId);

    await pipeline.settle();

    expect(execution.status).toBe('FAILED');
    expect(execution.error).toBe('States.Timeout');
    expect(pipeline.path(execution.executionArn)).toEqual(
      expect.arrayContaining([
        'AwaitApproval',
        'ApprovalFailed',
        'Compensate',
        'DestroyGreenStack',
        'RunFailed',
      ]),
    );
    const [run] = await pipeline.runsOf('unanswered-app');
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'Approval',
      errorName: 'States.Timeout',
      compensationStatus: 'COMPLETE',
    });

    // ExpireApproval closed it on the way to compensation: nothing holds the token any more.
    expect(pipeline.path(execution.executionArn)).toContain('ExpireApproval');
    const expired = await pipeline.approvalItem(runId);
    expect(expired?.status).toBe('EXPIRED');
    expect(expired?.taskToken).toBeUndefined();

    const late = await pipeline.approve(runId, {
      principal: pipeline.approverPrincipal('late-larry'),
      reason: 'sorry, was at lunch',
    });

    expect(late.statusCode).toBe(410);
    expect(late.body).toMatchObject({ error: 'ApprovalExpiredError' });
    const item = await pipeline.approvalItem(runId);
    expect(item?.status).toBe('EXPIRED');
    expect(item?.taskToken).toBeUndefined();
    expect(Object.values(await pipeline.orphans(runId, 'unanswered-app')).flat()).toEqual([]);
    const events = (await pipeline.runItems(runId)).filter((i) => i.entity === 'EVENT').map((i) => i.type);
    expect(events).toContain('APPROVAL_REQUESTED');
    expect(events).not.toContain('APPROVED');
    expect(pipeline.sfn.pendingTokens()).toBe(0);
  });
});

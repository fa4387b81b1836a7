import { LocalPipeline } from '../harness/pipeline';
import { triggerMessage } from '../fixtures/messages';
import { approvalRequestedSchema } from '../../shared/notification';

/**
 * The approval gate on the real state machine and the real approval worker: a stage that requires
 * approval stops after Validate until an approver decides through the Function URL (the harness
 * delivers the event Lambda would after IAM authentication).
 */
describe('the approval gate', () => {
  let pipeline: LocalPipeline;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      stageOverrides: { approval: { required: true, timeoutSeconds: 3600 } },
    });
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  /** Publishes a trigger and waits until the run waits for approval. */
  const runAwaitingApproval = async (appId: string) => {
    pipeline.publishTrigger(triggerMessage(pipeline.name('ArtifactsBucket'), { appId }));
    let executionArn = '';
    await pipeline.until(() => {
      executionArn = pipeline.sfn.list().find((e) => e.name.startsWith(`${appId}-dev-`))?.executionArn ?? '';
      return executionArn !== '';
    }, `the execution of ${appId}`);
    const runId = executionArn.split('-').pop()!;
    const pending = await pipeline.untilAwaitingApproval(runId);
    return { executionArn, runId, pending };
  };

  const eventsOf = async (runId: string, type: string) =>
    (await pipeline.runItems(runId)).filter((i) => i.entity === 'EVENT' && i.type === type);

  it('waits after Validate, asks for a decision on the outcome topic, and goes live once an approver approves', async () => {
    const { executionArn, runId, pending } = await runAwaitingApproval('approved-app');
    const token = String(pending.taskToken);

    // Waiting: nothing after Validate has run, and the request went out without the token.
    expect(pipeline.path(executionArn).slice(-3)).toEqual(['Validate', 'NeedsApproval', 'AwaitApproval']);
    const request = pipeline.outcomes().find((o) => o.status === 'APPROVAL_REQUESTED' && o.runId === runId);
    expect(approvalRequestedSchema.safeParse(request).error?.issues ?? []).toEqual([]);
    expect(request).toMatchObject({
      appId: 'approved-app',
      environment: 'dev',
      version: '1.4.2',
      buildId: 'approved-app-build-1',
      inspec: { failed: 0 },
      report: expect.stringMatching(
        new RegExp(`^s3://${pipeline.name('ReportsBucket')}/dev/approved-app/${runId}/validate/`),
      ),
      approveCommand: `ami-pipeline --stage dev approve ${runId} --reason "<why>"`,
    });
    expect(JSON.stringify(pipeline.sns.messages(pipeline.name('OutcomeTopic')))).not.toContain(token);
    expect(await eventsOf(runId, 'APPROVAL_REQUESTED')).toHaveLength(1);

    // Someone who passed IAM but is not a session of the approver role is refused; the run waits on.
    const intruder = await pipeline.approve(runId, {
      principal: `arn:aws:sts::000000000000:assumed-role/PlatformAdmin/mallory`,
      reason: 'looks fine to me',
    });
    expect(intruder.statusCode).toBe(403);
    expect(intruder.body.message).toContain('ami-pipeline-dev-approver');
    expect(pipeline.sfn.get(executionArn).status).toBe('RUNNING');
    expect((await pipeline.approvalItem(runId))?.status).toBe('PENDING');

    const principal = pipeline.approverPrincipal('alice@example.com');
    const approved = await pipeline.approve(runId, { principal, reason: 'CAB-1234 signed off' });
    await pipeline.settle();

    expect(approved).toEqual({
      statusCode: 200,
      body: expect.objectContaining({ runId, status: 'APPROVED', decidedBy: principal }),
    });
    expect(JSON.stringify(approved.body)).not.toContain(token);
    const execution = pipeline.sfn.get(executionArn);
    expect(execution.status).toBe('SUCCEEDED');
    expect(pipeline.path(executionArn)).toEqual(
      expect.arrayContaining(['AwaitApproval', 'SmokeTest', 'RecordRelease', 'Succeeded']),
    );
    const output = JSON.parse(execution.output ?? '{}') as { stages: Record<string, unknown> };
    expect(output.stages.approval).toEqual({
      approvedBy: principal,
      approvedAt: approved.body.decidedAt,
      reason: 'CAB-1234 signed off',
    });
    const [decision, ...more] = await eventsOf(runId, 'APPROVED');
    expect(more).toEqual([]);
    expect(decision).toMatchObject({
      stage: 'Approval',
      at: approved.body.decidedAt,
      detail: { principal, reason: 'CAB-1234 signed off', decidedAt: approved.body.decidedAt },
    });
    const [run] = await pipeline.runsOf('approved-app');
    expect(run?.status).toBe('SUCCEEDED');
    // The token is gone once the decision reached the run, and never reached the audit table.
    expect(await pipeline.approvalItem(runId)).toMatchObject({ status: 'APPROVED', decidedBy: principal });
    expect((await pipeline.approvalItem(runId))?.taskToken).toBeUndefined();
    expect(JSON.stringify(await pipeline.runItems(runId))).not.toContain(token);

    // A second decision is refused: the run was decided.
    const again = await pipeline.reject(runId, { principal, reason: 'changed my mind' });
    expect(again.statusCode).toBe(409);
  });

  it('refuses a rejection without a reason, naming the field, and keeps the run waiting', async () => {
    const { executionArn, runId } = await runAwaitingApproval('reasonless-app');

    const refused = await pipeline.reject(runId, { principal: pipeline.approverPrincipal('bob') });

    expect(refused.statusCode).toBe(400);
    expect(String(refused.body.message)).toMatch(/^reason: /);
    expect(pipeline.sfn.get(executionArn).status).toBe('RUNNING');

    // Let the run end (approved) so the next test finds the lock free.
    expect((await pipeline.approve(runId, { principal: pipeline.approverPrincipal('bob') })).statusCode).toBe(
      200,
    );
    await pipeline.settle();
  });

  it('fails a rejected run at Approval, compensates it fully and audits who rejected it, when and why', async () => {
    const { executionArn, runId } = await runAwaitingApproval('rejected-app');
    const principal = pipeline.approverPrincipal('carol');

    const rejected = await pipeline.reject(runId, { principal, reason: 'InSpec skipped too many controls' });
    await pipeline.settle();

    expect(rejected.statusCode).toBe(200);
    const execution = pipeline.sfn.get(executionArn);
    expect(execution.status).toBe('FAILED');
    expect(execution.error).toBe('ApprovalRejectedError');
    expect(pipeline.path(executionArn)).toEqual(
      expect.arrayContaining(['AwaitApproval', 'ApprovalFailed', 'Compensate', 'DestroyGreenStack']),
    );
    expect(pipeline.path(executionArn)).not.toContain('SmokeTest');
    const [run] = await pipeline.runsOf('rejected-app');
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'Approval',
      errorName: 'ApprovalRejectedError',
      errorCause: `rejected by ${principal}: InSpec skipped too many controls`,
      compensationStatus: 'COMPLETE',
    });
    expect(Object.values(await pipeline.orphans(runId, 'rejected-app')).flat()).toEqual([]);
    const [decision] = await eventsOf(runId, 'REJECTED');
    expect(decision).toMatchObject({
      stage: 'Approval',
      at: rejected.body.decidedAt,
      detail: { principal, reason: 'InSpec skipped too many controls' },
    });
    expect(await pipeline.approvalItem(runId)).toMatchObject({ status: 'REJECTED', decidedBy: principal });
    const failure = pipeline.outcomes().find((o) => o.status === 'FAILED' && o.runId === runId);
    expect(failure).toMatchObject({ failedStage: 'Approval', error: 'ApprovalRejectedError' });
  });

  it('fails a run whose token someone answered without a decision at Approval (ApprovalNotVerifiedError), compensates it and expires the approval', async () => {
    const { executionArn, runId, pending } = await runAwaitingApproval('forged-app');
    const mallory = 'arn:aws:sts::000000000000:assumed-role/PlatformAdmin/mallory';

    // Whoever holds the token and states:SendTaskSuccess (here: straight to Step Functions, with
    // the token read from the coordination table) answers it, claiming an approval.
    pipeline.sfn.sendTaskSuccess({
      taskToken: String(pending.taskToken),
      output: JSON.stringify({
        approvedBy: mallory,
        approvedAt: new Date().toISOString(),
        reason: 'trust me',
      }),
    });
    await pipeline.settle();

    const execution = pipeline.sfn.get(executionArn);
    expect(execution.status).toBe('FAILED');
    expect(execution.error).toBe('ApprovalNotVerifiedError');
    expect(pipeline.path(executionArn)).toEqual(
      expect.arrayContaining([
        'AwaitApproval',
        'VerifyApproval',
        'ExpireApproval',
        'ApprovalFailed',
        'Compensate',
        'DestroyGreenStack',
      ]),
    );
    expect(pipeline.path(executionArn)).not.toContain('SmokeTest');
    const [run] = await pipeline.runsOf('forged-app');
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'Approval',
      errorName: 'ApprovalNotVerifiedError',
      compensationStatus: 'COMPLETE',
    });
    expect(String(run?.errorCause)).toContain('its approval is PENDING, not APPROVED');
    expect(Object.values(await pipeline.orphans(runId, 'forged-app')).flat()).toEqual([]);
    // The approval no longer waits: EXPIRED, its token dropped; a late approval is refused.
    const item = await pipeline.approvalItem(runId);
    expect(item?.status).toBe('EXPIRED');
    expect(item?.taskToken).toBeUndefined();
    expect(await eventsOf(runId, 'APPROVED')).toEqual([]);
    const late = await pipeline.approve(runId, {
      principal: pipeline.approverPrincipal('erin'),
      reason: 'ok',
    });
    expect(late.statusCode).toBe(410);
  });

  it('answers 404 for a run that never asked for approval', async () => {
    const answer = await pipeline.approve('0123456789abcdef0123', {
      principal: pipeline.approverPrincipal(),
      reason: 'ok',
    });

    expect(answer.statusCode).toBe(404);
  });
});

import { LocalPipeline } from '../harness/pipeline';
import { triggerMessage } from '../fixtures/messages';

// A file of its own: handlers keep the clients of the first harness in a file, and this one needs
// fault injection on a stage that requires approval.
describe('the approval gate when AwaitApproval is retried', () => {
  let pipeline: LocalPipeline;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      faults: true,
      stageOverrides: { approval: { required: true, timeoutSeconds: 3600 } },
    });
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  it("parks the retry's new token, asks for a decision once, and the approval answers the retry", async () => {
    // The first invocation runs (token parked, request published), then its answer is lost: Step
    // Functions reports Lambda.SdkClientException and AwaitApproval retries with a new token.
    pipeline.faults.arm({
      site: 'AwaitApproval → Lambda:Invoke approval',
      kind: 'timeout',
      phase: 'after',
      attempts: 1,
    });
    pipeline.publishTrigger(triggerMessage(pipeline.name('ArtifactsBucket'), { appId: 'retried-app' }));
    await pipeline.until(() => pipeline.sfn.list().length > 0, 'the execution');
    const execution = pipeline.sfn.list()[0]!;
    const runId = execution.name.split('-').pop()!;
    await pipeline.until(
      () => execution.events.some((e) => e.type === 'StateRetried' && e.state === 'AwaitApproval'),
      'AwaitApproval to be retried',
    );
    await pipeline.untilAwaitingApproval(runId);

    const answer = await pipeline.approve(runId, {
      principal: pipeline.approverPrincipal('dave'),
      reason: 'after a retry',
    });
    await pipeline.settle();

    expect(pipeline.faults.hits).toBe(1);
    expect(answer.statusCode).toBe(200);
    expect(execution.status).toBe('SUCCEEDED');
    expect(pipeline.outcomes().filter((o) => o.status === 'APPROVAL_REQUESTED')).toHaveLength(1);
    const events = (await pipeline.runItems(runId)).filter((i) => i.entity === 'EVENT').map((i) => i.type);
    expect(events.filter((type) => type === 'APPROVAL_REQUESTED')).toHaveLength(1);
    expect(events.filter((type) => type === 'APPROVED')).toHaveLength(1);
    expect(pipeline.sfn.pendingTokens()).toBe(0);
  });
});

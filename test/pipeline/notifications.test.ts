import { LocalPipeline } from '../harness/pipeline';
import { triggerMessage } from '../fixtures/messages';
import { outcomeNotificationSchema } from '../../shared/notification';

/**
 * The outcome topic is what Jenkins waits on: every message the state machines publish must match
 * the documented schema (shared/notification.ts, docs/notifications.md), whatever the path.
 */
describe('outcome notifications', () => {
  let pipeline: LocalPipeline;
  let failAt: { state: string; error: string } | undefined;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      beforeTask: (state) => {
        if (failAt?.state === state) {
          throw Object.assign(new Error(`${state} failed in this test`), { name: failAt.error });
        }
      },
    });
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  const outcomeOf = async (appId: string) => {
    pipeline.publishTrigger(triggerMessage(pipeline.name('ArtifactsBucket'), { appId }));
    await pipeline.settle();
    failAt = undefined;
    const messages = pipeline.sns
      .messages(pipeline.name('OutcomeTopic'))
      .filter((m) => m.attributes.appId === appId);
    expect(messages).toHaveLength(1);
    const [message] = messages;
    const body: unknown = JSON.parse(message?.message ?? 'null');
    const parsed = outcomeNotificationSchema.safeParse(body);
    expect(parsed.error?.issues ?? []).toEqual([]);
    return { body: body as Record<string, unknown>, attributes: message?.attributes ?? {} };
  };

  it('a release: SUCCEEDED with the AMI and the ALB Jenkins can hand on', async () => {
    const { body, attributes } = await outcomeOf('notify-ok');
    const live = await pipeline.liveRelease('notify-ok');

    const targetGroup = (await pipeline.runItems(String(body.runId))).find(
      (i) => i.resourceType === 'TARGET_GROUP',
    );

    expect(body).toMatchObject({ status: 'SUCCEEDED', appId: 'notify-ok', amiId: live?.amiId });
    // The ALB the provision stage reported (locally a loopback address of the simulated ALB).
    expect(body.albDns).toBe((targetGroup?.detail as { albDns?: string } | undefined)?.albDns);
    expect(attributes).toMatchObject({ status: 'SUCCEEDED', appId: 'notify-ok', environment: 'dev' });
  });

  it('a failure: FAILED with the stage, error, cause and how completely it was undone', async () => {
    pipeline.commands.setScenario('notify-fail', 'bake', { outcome: 'fail' });

    const { body, attributes } = await outcomeOf('notify-fail');

    expect(body).toMatchObject({
      status: 'FAILED',
      failedStage: 'Bake',
      error: 'BakeFailedError',
      compensation: { status: 'COMPLETE' },
    });
    expect(attributes).toMatchObject({ status: 'FAILED', compensation: 'COMPLETE' });
    expect(body.auditFailure).toBeNull();
  });

  it('a failure whose own audit write failed: FAILED, saying the run item still shows RUNNING', async () => {
    pipeline.commands.setScenario('notify-unrecorded', 'bake', { outcome: 'fail' });
    failAt = { state: 'RecordFailure', error: 'DynamoDB.ResourceNotFoundException' };

    const { body } = await outcomeOf('notify-unrecorded');

    expect(body).toMatchObject({
      status: 'FAILED',
      failedStage: 'Bake',
      error: 'BakeFailedError',
      auditFailure: { Error: 'DynamoDB.ResourceNotFoundException', Cause: expect.any(String) },
    });
    const [runItem] = await pipeline.runsOf('notify-unrecorded');
    expect(runItem?.status).toBe('RUNNING');
  });

  it.each([
    ['RecordRelease', 'ReleaseLiveError'],
    ['RecordSuccess', 'DynamoDB.ValidationException'],
  ])('live, then %s fails: LIVE_WITH_ERRORS (nothing undone) instead of silence', async (state, error) => {
    const appId = `notify-live-${state.toLowerCase()}`;
    failAt = { state, error };

    const { body, attributes } = await outcomeOf(appId);

    expect(body).toMatchObject({ status: 'LIVE_WITH_ERRORS', failedStage: state, error });
    expect(attributes).toMatchObject({ status: 'LIVE_WITH_ERRORS', appId });
    const execution = pipeline.sfn.list().find((e) => e.name.startsWith(`${appId}-dev-`));
    expect(execution?.status).toBe('FAILED');
    // Nothing was compensated: no undo events.
    const runId = String(body.runId);
    const undone = (await pipeline.runItems(runId)).filter((i) => i.type === 'UNDONE');
    expect(undone).toEqual([]);
  });
});

import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { LocalPipeline } from '../harness/pipeline';
import type { TaskHook } from '../harness/sim/sfn';
import { triggerMessage } from '../fixtures/messages';

/** A promise the test resolves by hand: holds a stage open for as long as the test needs. */
const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
};

describe('one run per app and environment (AcquireLock)', () => {
  let pipeline: LocalPipeline;
  let bucket: string;
  let hook: TaskHook | undefined;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      // 40 attempts × 25 ms: long enough for a held stage to be released mid-wait, still instant.
      retryIntervalOverrides: { AcquireLock: 25 },
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

  const executionsOf = (appId: string) =>
    pipeline.sfn.list().filter((e) => e.name.startsWith(`${appId}-dev-`));

  it('makes a second run wait for the first to release the lock, then runs it', async () => {
    const held = gate();
    const secondRetried = gate();
    hook = async (state, _input, execution) => {
      if (state === 'PreProvision' && execution.input.includes('"version":"1.0.0"')) await held.opened;
      if (state === 'AcquireLock' && execution.input.includes('"version":"2.0.0"')) {
        if (execution.events.some((e) => e.type === 'StateRetried')) secondRetried.open();
      }
    };

    pipeline.publishTrigger(
      triggerMessage(bucket, { appId: 'busy-app', version: '1.0.0', buildId: 'busy-1' }),
    );
    await pipeline.sns.idle();
    pipeline.publishTrigger(
      triggerMessage(bucket, { appId: 'busy-app', version: '2.0.0', buildId: 'busy-2' }),
    );
    await secondRetried.opened; // the second run has found the lock taken and is waiting
    expect((await pipeline.lockItem('busy-app', 'dev'))?.runId).toBe(
      executionsOf('busy-app')[0]?.name.split('-').pop(),
    );
    held.open();
    await pipeline.settle();

    const [first, second] = executionsOf('busy-app');
    expect(first?.status).toBe('SUCCEEDED');
    expect(second?.status).toBe('SUCCEEDED');
    const secondLockedAt = second!.events.find(
      (e) => e.type === 'StateExited' && e.state === 'AcquireLock',
    )?.timestamp;
    const firstReleasedAt = first!.events.find(
      (e) => e.type === 'StateExited' && e.state === 'ReleaseLock',
    )?.timestamp;
    expect(secondLockedAt).toBeGreaterThanOrEqual(firstReleasedAt!);
    expect((await pipeline.runsOf('busy-app')).map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(await pipeline.lockItem('busy-app', 'dev')).toBeUndefined();
  });

  it('gives up after its bounded retries with LockHeldError naming the holder, and leaves the holder its lock', async () => {
    const holder = 'arn:aws:states:eu-west-1:000000000000:execution:ami-pipeline-dev:stuck-app-dev-0000';
    await pipeline.db.send(
      new PutCommand({
        TableName: pipeline.name('CoordinationTable'),
        Item: {
          pk: 'LOCK#stuck-app#dev',
          holder,
          runId: 'holder-run',
          lockedAt: new Date().toISOString(),
          expiresAt: Math.floor(Date.now() / 1000) + 3600,
        },
      }),
    );

    pipeline.publishTrigger(triggerMessage(bucket, { appId: 'stuck-app' }));
    await pipeline.settle();

    const [execution] = executionsOf('stuck-app');
    expect(execution?.status).toBe('FAILED');
    expect(execution?.error).toBe('LockHeldError');
    expect(
      execution?.events.filter((e) => e.type === 'StateRetried' && e.state === 'AcquireLock'),
    ).toHaveLength(40);
    expect(pipeline.path(execution!.executionArn)).not.toContain('PreProvision');

    // Recorded although PreProvision never ran: the failure branch writes the whole run item.
    const [run] = await pipeline.runsOf('stuck-app');
    expect(run).toMatchObject({
      status: 'FAILED',
      failedStage: 'AcquireLock',
      errorName: 'LockHeldError',
      version: '1.4.2',
      buildId: 'stuck-app-build-1',
      gsi1pk: `RUN#${String(run?.runId)}`,
      gsi2pk: 'ENV#dev',
    });
    expect(String(run?.errorCause)).toContain('locked by run holder-run');
    expect(await pipeline.lockItem('stuck-app', 'dev')).toMatchObject({ holder, runId: 'holder-run' });
  });

  it('takes over a lock whose run died (past its expiry)', async () => {
    await pipeline.db.send(
      new PutCommand({
        TableName: pipeline.name('CoordinationTable'),
        Item: {
          pk: 'LOCK#orphan-app#dev',
          holder: 'arn:aws:states:eu-west-1:000000000000:execution:ami-pipeline-dev:orphan-app-dev-dead',
          runId: 'dead-run',
          lockedAt: '2026-01-01T00:00:00.000Z',
          expiresAt: Math.floor(Date.now() / 1000) - 60,
        },
      }),
    );

    pipeline.publishTrigger(triggerMessage(bucket, { appId: 'orphan-app' }));
    await pipeline.settle();

    const [execution] = executionsOf('orphan-app');
    expect(execution?.status).toBe('SUCCEEDED');
    expect(execution?.events.some((e) => e.type === 'StateRetried')).toBe(false);
    expect(await pipeline.lockItem('orphan-app', 'dev')).toBeUndefined();
  });
});

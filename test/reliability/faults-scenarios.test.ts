import { LocalPipeline } from '../harness/pipeline';
import { FaultSuite, type Baseline } from './faults-support';

/**
 * Named fault scenarios: a worker killed between SendCommand and recording the command id, a lost
 * and a duplicated completion event, a redrive after a failure, and the gaps this suite found that
 * need changes in statemachines/ or functions/*\/function.yml (`it.failing`, each with the fix).
 */
describe('fault scenarios', () => {
  let pipeline: LocalPipeline;
  let suite: FaultSuite;
  let clean: Baseline;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({ faults: true });
    suite = new FaultSuite(pipeline, 'fs');
    clean = await suite.baseline();
  }, 60_000);

  afterAll(async () => {
    if (suite) console.log(suite.summary());
    await pipeline?.stop();
  });

  const site = (key: string): string => {
    if (!clean.sites.some((s) => s.site === key)) throw new Error(`a clean release makes no call ${key}`);
    return key;
  };
  it('compensates a bake whose worker died after SendCommand, before recording the command id', async () => {
    // A real bake runs for many minutes: it is still running when compensation looks for it.
    const result = await suite.run([{ site: site('Bake → SSM:SendCommand'), kind: 'crash', attempts: 1 }], {
      setup: (appId) => pipeline.commands.setScenario(appId, 'bake', { outcome: 'hang' }),
    });

    expect(result.problems).toEqual([]);
    expect(result.state).toBe('COMPENSATED');
    expect(result.execution?.error).toBe('Lambda.Unknown');
    expect(result.runItem).toMatchObject({
      status: 'FAILED',
      failedStage: 'Bake',
      compensationStatus: 'COMPLETE',
    });
    // The command the worker never recorded was found by its Comment and cancelled.
    const commands = [...pipeline.commands.commands.values()].filter((c) => c.comment.includes(result.runId));
    expect(commands.map((c) => c.status)).toEqual(['Cancelled']);
    expect(result.items).toContainEqual(
      expect.objectContaining({ type: 'UNDONE', id: `CANCEL_COMMAND#${commands[0]?.commandId}` }),
    );
    expect(pipeline.leftovers(result.runId)).toEqual({
      images: [],
      snapshots: [],
      grants: [],
      stacks: [],
      runningCommands: [],
    });
  });

  it('retries a bake whose worker answer was lost, adopting the running build instead of starting another', async () => {
    const result = await suite.run(
      [{ site: site('Bake → Lambda:Invoke bake'), kind: 'timeout', attempts: 1 }],
      {
        // A build still running when Step Functions retries the state: it ends once the retry has run.
        setup: (appId) => {
          const bakeInvocations = () =>
            pipeline.lambda.invocations.filter((i) => i.functionKey === 'bake').length;
          const before = bakeInvocations();
          const retried = pipeline.until(() => bakeInvocations() >= before + 2, 'the retried bake worker');
          pipeline.commands.setScenario(appId, 'bake', { outcome: 'success', runsUntil: retried });
        },
        expect: clean.expected,
      },
    );

    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
    const bakes = [...pipeline.commands.commands.values()].filter(
      (c) => c.comment.includes(result.runId) && c.step === 'bake',
    );
    expect(bakes.map((c) => c.status)).toEqual(['Success']);
    expect(
      result.execution?.events.filter((e) => e.type === 'StateRetried' && e.state === 'Bake'),
    ).toHaveLength(1);
  });

  it('keeps the build a retried state adopted while a reconciler run still holds the old token', async () => {
    const called = (key: string, fault?: string) => () =>
      pipeline.faults.calls.some((c) => c.site === key && (fault === undefined || c.fault === fault));
    const bakeRuns = () => pipeline.lambda.invocations.filter((i) => i.functionKey === 'bake').length;
    const before = bakeRuns();
    const result = await suite.run(
      [
        // The first attempt starts the build and its answer is lost; the retry waits for a
        // scheduled reconciler run to read the task (with the first attempt's token) …
        {
          site: site('Bake → Lambda:Invoke bake'),
          kind: ['timeout', 'hold'],
          until: () =>
            pipeline.until(called('reconciler → SFN:SendTaskHeartbeat', 'hold'), 'the reconciler heartbeat'),
        },
        // … whose heartbeat for that token is refused only after the retry adopted the build.
        {
          site: 'reconciler → SFN:SendTaskHeartbeat',
          kind: 'hold',
          attempts: 1,
          until: () => pipeline.until(() => bakeRuns() >= before + 2, 'the retry to adopt the build'),
        },
      ],
      {
        setup: (appId) => {
          const reconciled = pipeline
            .until(called('Bake → Lambda:Invoke bake', 'hold'), 'the held retry')
            .then(() => pipeline.reconcile());
          pipeline.commands.setScenario(appId, 'bake', { outcome: 'success', runsUntil: reconciled });
        },
        expect: clean.expected,
      },
    );

    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
    const bakes = [...pipeline.commands.commands.values()].filter(
      (c) => c.comment.includes(result.runId) && c.step === 'bake',
    );
    expect(bakes.map((c) => c.status)).toEqual(['Success']);
  });

  it('completes a stage whose completion event was lost, through the reconciler', async () => {
    const mark = pipeline.faults.mark();
    const result = await suite.run(
      [{ site: site('EventBridge → Lambda:InvokeAsync commandCompleted:bake'), kind: 'drop' }],
      { expect: clean.expected },
    );

    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
    const calls = pipeline.faults.callsSince(mark);
    expect(calls.some((c) => c.site === 'reconciler → SFN:SendTaskSuccess')).toBe(true);
    expect(calls.filter((c) => c.site === 'commandCompleted:bake → SFN:SendTaskSuccess')).toEqual([]);
  });

  it('completes a stage once when its completion event is delivered twice', async () => {
    const mark = pipeline.faults.mark();
    const result = await suite.run(
      [
        {
          site: site('EventBridge → Lambda:InvokeAsync commandCompleted:bake'),
          kind: 'duplicate',
          attempts: 1,
        },
      ],
      { expect: clean.expected },
    );

    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
    const calls = pipeline.faults.callsSince(mark);
    // Both deliveries ran; only the first found the task waiting and answered the token.
    expect(
      calls.filter((c) => c.site === 'commandCompleted:bake → DynamoDB:GetItem coordination COMMAND#'),
    ).toHaveLength(2);
    expect(calls.filter((c) => c.site === 'commandCompleted:bake → SFN:SendTaskSuccess')).toHaveLength(1);
    const completions = result.items.filter((i) => i.type === 'COMMAND_SUCCESS' && i.stage === 'bake');
    expect(completions).toHaveLength(1);
  });

  it('runs a new build id clean after a failed run, which left nothing; the failed build id is a duplicate', async () => {
    const appId = suite.appId();
    const failed = await suite.run([{ site: site('Distribute → EC2:CreateTags'), kind: 'server' }], {
      appId,
      buildId: `${appId}-build-1`,
    });
    expect(failed.problems).toEqual([]);
    expect(failed.state).toBe('COMPENSATED');
    expect(failed.runItem).toMatchObject({
      status: 'FAILED',
      failedStage: 'Distribute',
      // Retried by the SDK and then the state machine; the cause keeps EC2's own name.
      errorName: 'AwsTransientError',
      errorCause: expect.stringContaining('Unavailable: '),
    });

    // The cause is fixed (no fault armed); Jenkins publishes again with a new build id.
    const fixed = await suite.run([], { appId, buildId: `${appId}-build-2`, expect: clean.expected });

    expect(fixed.problems).toEqual([]);
    expect(fixed.state).toBe('SUCCEEDED');
    expect(Object.values(await pipeline.orphans(failed.runId, appId)).flat()).toEqual([]);

    // The failed build id again: the same run, so nothing starts and nothing is rejected.
    const executions = pipeline.sfn.list().length;
    const again = await suite.run([], { appId, buildId: `${appId}-build-1` });
    expect(pipeline.sfn.list()).toHaveLength(executions);
    expect(again.runItem).toMatchObject({ status: 'FAILED', failedStage: 'Distribute' });
    expect(again.problems).toEqual([]);
    expect((await pipeline.rejections()).filter((r) => r.appId === appId)).toEqual([]);
    expect((await pipeline.liveRelease(appId))?.runId).toBe(fixed.runId);
  });

  // ---- beyond the SDK's retries: the ASL Retry must take over ---------------------------------

  const outage = (key: string) =>
    suite.run([{ site: site(key), kind: ['throttle', 'throttle', 'throttle'] }], { expect: clean.expected });

  it('retries a DynamoDB throttle that outlasts the SDK (ProvisionedThroughputExceededException)', async () => {
    const result = await outage('PreProvision → DynamoDB:PutItem audit APP# RUN#');
    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
  });

  it('retries an SSM throttle that outlasts the SDK (ThrottlingException)', async () => {
    const result = await outage('PreProvision → SSM:PutParameter');
    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
  });

  // Every service spells its throttle and 5xx its own way (RequestLimitExceeded, Throttling, SlowDown,
  // KMSInternalException, …). Workers throw them as AwsTransientError (shared/errors.ts), which every
  // Lambda task retries with backoff and jitter, the token stages too (a retry adopts the command).
  it.each([
    ['an EC2 throttle in Distribute (RequestLimitExceeded)', 'Distribute → EC2:CreateTags'],
    ['a KMS throttle in Distribute (ThrottlingException)', 'Distribute → KMS:CreateGrant'],
    [
      'an Elastic Load Balancing throttle in PrepareTraffic (Throttling)',
      'PrepareTraffic → ElasticLoadBalancingV2:DescribeListeners',
    ],
    ['a CloudWatch throttle in CheckStep (Throttling)', 'CheckStep → CloudWatch:GetMetricStatistics'],
    ['an S3 throttle in PreProvision (SlowDown)', 'PreProvision → S3:GetObject artifacts'],
    ['an SSM throttle in a token stage (Bake)', 'Bake → SSM:DescribeInstanceInformation'],
  ])('retries %s that outlasts the SDK, to success', async (_, key) => {
    const result = await outage(key);
    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
  });

  it.each([
    ['an EC2 5xx in Distribute (Unavailable)', 'Distribute → EC2:CreateTags'],
    ['a KMS 5xx in Distribute (KMSInternalException)', 'Distribute → KMS:CreateGrant'],
  ])('retries %s that outlasts the SDK, to success, with one command per stage', async (_, key) => {
    const result = await suite.run([{ site: site(key), kind: ['server', 'server', 'server', 'server'] }], {
      expect: clean.expected,
    });
    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
    const commands = [...pipeline.commands.commands.values()].filter((c) => c.comment.includes(result.runId));
    expect(commands.map((c) => c.step).sort()).toEqual(['bake', 'provision', 'validate']);
  });

  // SendCommand throttled (a 4xx: SSM refused it, nothing started) is retried like any throttle...
  it('retries a SendCommand throttle that outlasts the SDK, to success, with one command per stage', async () => {
    const result = await outage('Provision → SSM:SendCommand');
    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
    const commands = [...pipeline.commands.commands.values()].filter((c) => c.comment.includes(result.runId));
    expect(commands.map((c) => c.step).sort()).toEqual(['bake', 'provision', 'validate']);
  });

  // ...but a 5xx may have started the command: the stage is not retried (a second terraform apply
  // could run beside the first). The run compensates, and nothing is left.
  it('compensates, never sending twice, when SendCommand fails with a 5xx that outlasts the SDK', async () => {
    const result = await suite.run([
      { site: site('Provision → SSM:SendCommand'), kind: ['server', 'server', 'server', 'server'] },
    ]);
    expect(result.problems).toEqual([]);
    expect(result.state).toBe('COMPENSATED');
    expect(result.runItem).toMatchObject({
      failedStage: 'Provision',
      errorName: 'CommandOutcomeUnknownError',
    });
    const commands = [...pipeline.commands.commands.values()].filter((c) => c.comment.includes(result.runId));
    expect(commands.filter((c) => c.step === 'provision' && c.parameters.mode !== 'destroy')).toHaveLength(0);
  });

  // A worker that dies (Lambda.Unknown: out of memory, its own timeout) after the live pointer moved:
  // RecordRelease retries it (it is idempotent), so the release is recorded and the run succeeds.
  it('retries a RecordRelease that died after the release went live, to success', async () => {
    const result = await suite.run([
      { site: site('RecordRelease → DynamoDB:PutItem audit LIVE# APP#'), kind: 'crash', attempts: 1 },
    ]);
    expect(result.problems).toEqual([]);
    expect(result.state).toBe('SUCCEEDED');
    expect(result.runItem).toMatchObject({ status: 'SUCCEEDED' });
  });

  // Distribute died after CreateGrant and before recording the grant: compensation finds it among
  // the key's grants by its name (ami-pipeline-<runId>) and revokes it.
  it('leaves no KMS grant when Distribute dies right after creating it', async () => {
    const result = await suite.run([
      { site: site('Distribute → KMS:CreateGrant'), kind: 'crash', attempts: 1 },
    ]);
    expect(result.problems).toEqual([]);
    expect(result.state).toBe('COMPENSATED');
    expect(pipeline.leftovers(result.runId).grants).toEqual([]);
    expect(result.items).toContainEqual(
      expect.objectContaining({ type: 'UNDONE', id: expect.stringMatching(/^REVOKE_GRANT#/) }),
    );
  });

  it('ended every run above consistent, the known gaps apart', () => {
    const inconsistent = suite.results.filter((r) => r.problems.length > 0 && !suite.isKnownGap(r));
    expect(inconsistent.map((r) => `${r.appId}: ${r.problems.join('; ')}`)).toEqual([]);
  });
});

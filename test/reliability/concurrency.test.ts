import { ConditionalCheckFailedException, DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { SNSEvent } from 'aws-lambda';
import { appConfigSchema } from '../../shared/config/app';
import { longestRunSeconds } from '../../shared/config/stage';
import { acquireLock, lockKey } from '../../shared/lock';
import { LockHeldError } from '../../shared/errors';
import type { TriggerOutcome } from '../../shared/trigger/handle';
import { sampleAppConfig, triggerMessage } from '../fixtures/messages';
import type { LambdaRuntime } from '../harness/lambda';
import { LocalPipeline } from '../harness/pipeline';
import type { ExecutionRecord, TaskHook } from '../harness/sim/sfn';

/**
 * Issue 6, part 3: the pipeline under concurrent load, on the real state machine and handlers.
 * Fifty apps released at once, the same message delivered several times at once, several builds of
 * one app racing for its lock, and bad messages in the middle of it all. What must hold: one
 * execution per build id, runs of one app+environment never inside their lock at the same time,
 * every run and every rejected message in the audit table, and no lock left behind (a dead run's
 * lock expiring through its TTL attribute).
 */

const ENV = 'dev';
const DISTINCT_APPS = 50;
/** Apps whose InSpec finds more failed controls than allowed: compensated, audited FAILED. */
const FAILING_APPS = new Set([7, 21, 42]);
/** Apps whose message arrives 5× at once (2 SNS redeliveries, 2 re-publishes by Jenkins). */
const DUPLICATED_APPS = new Set([3, 8, 13, 18, 23, 28, 33, 38, 43, 48]);
const CONTENDED_APP = 'conc-shared';
const CONTENDED_BUILDS = 6;
/** One build of the contended app is duplicated, one fails mid-run (after taking the lock). */
const CONTENDED_DUPLICATED_BUILD = 3;
const CONTENDED_FAILING_BUILD = 4;
const CONFLICT_APP = 'conc-conflict';
/** The app schema's limits on the blue-green shift (shared/config/app.ts). */
const MAX_TRAFFIC_STEPS = 10;
const MAX_SOAK_SECONDS = 3600;

/** States that free the lock; a run is inside its lock from PreProvision until one of them starts. */
const RELEASE_STATES = new Set(['ReleaseLock', 'ReleaseLockAfterFailure', 'ReleaseLockWhileLive']);

const appIdOf = (n: number) => `conc-${String(n).padStart(2, '0')}`;

/** A fault the test injects into one run (named like the domain errors, caught by States.ALL). */
class InjectedFaultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InjectedFaultError';
  }
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

interface Delivery {
  messageId: string;
  /** The invocation's request id (kept across Lambda's retries of it). */
  requestId?: string | undefined;
  /** Attempts of the invocation (a retry after StartInProgressError counts). */
  attempts?: number;
  outcome?: TriggerOutcome;
  error?: string;
}

describe('concurrency: many runs, duplicate deliveries and lock contention at once', () => {
  let pipeline: LocalPipeline;
  let bucket: string;
  let hook: TaskHook | undefined;
  const deliveries: Delivery[] = [];

  /** Lock oracle: which execution is inside the lock of each app+environment right now. */
  const inside = new Map<string, string>();
  const holding = new Set<string>();
  const overlaps: string[] = [];
  /** The lock item each run saw while holding it (read from the coordination table). */
  const observedLocks: { executionArn: string; item: Record<string, unknown> | undefined }[] = [];

  const inputOf = (e: ExecutionRecord) =>
    JSON.parse(e.input) as { appId: string; environment: string; buildId: string; version: string };

  const lockOracle: TaskHook = async (state, _input, execution) => {
    const { appId, environment } = inputOf(execution);
    const key = `${appId}#${environment}`;
    const me = execution.executionArn;
    if (state === 'PreProvision' && !holding.has(me)) {
      // Only reachable once AcquireLock succeeded.
      const other = inside.get(key);
      if (other && other !== me) overlaps.push(`${me} entered ${key} while ${other} held it`);
      inside.set(key, me);
      holding.add(me);
      observedLocks.push({ executionArn: me, item: await pipeline.lockItem(appId, environment) });
      return;
    }
    if (!holding.has(me)) return;
    if (inside.get(key) !== me)
      overlaps.push(`${me} ran ${state} in ${key} while ${inside.get(key)} held it`);
    if (RELEASE_STATES.has(state)) {
      holding.delete(me);
      if (inside.get(key) === me) inside.delete(key);
    }
  };

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      // A held lock is retried 40 times (ASL); 2 s apart here gives a waiting run 80 s. The first
      // contended build shares one event loop with 56 other runs (17-25 s on 2 cores), the others
      // queue behind it; only the hand-overs pay the interval, once the other runs are done.
      retryIntervalOverrides: { AcquireLock: 2000 },
      beforeTask: async (state, input, execution) => {
        await lockOracle(state, input, execution);
        await hook?.(state, input, execution);
      },
    });
    bucket = pipeline.name('ArtifactsBucket');
    // Every trigger delivery's outcome, to account for each one (a stand-in for the trigger
    // function's CloudWatch logs; the harness keeps payloads, not results).
    const invoke = pipeline.lambda.invoke.bind(pipeline.lambda);
    pipeline.lambda.invoke = async (...args: Parameters<LambdaRuntime['invoke']>) => {
      const [keyOrArn, payload, options] = args;
      if (keyOrArn !== 'trigger') return invoke(...args);
      // One delivery per invocation: Lambda's retries of it (same request id) update its record.
      let delivery = deliveries.find((d) => d.requestId !== undefined && d.requestId === options?.requestId);
      if (!delivery) {
        delivery = {
          messageId: (payload as SNSEvent).Records[0]?.Sns.MessageId ?? '?',
          requestId: options?.requestId,
          attempts: 0,
        };
        deliveries.push(delivery);
      }
      delivery.attempts = (delivery.attempts ?? 0) + 1;
      try {
        const outcomes = (await invoke(...args)) as TriggerOutcome[];
        if (outcomes[0]) delivery.outcome = outcomes[0];
        delete delivery.error;
        return outcomes;
      } catch (err) {
        delivery.error = err instanceof Error ? err.name : String(err);
        throw err;
      }
    };
  });

  afterEach(() => {
    hook = undefined;
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  const scanCoordination = async () =>
    (await pipeline.db.send(new ScanCommand({ TableName: pipeline.name('CoordinationTable') }))).Items ?? [];

  it('runs 50 apps, duplicate bursts and six builds of one app at once: one execution per build, serialized locks, nothing lost', async () => {
    // ---- arrange -------------------------------------------------------------------------------
    for (const n of FAILING_APPS)
      pipeline.commands.setScenario(appIdOf(n), 'validate', { outcome: 'success', failedControls: 5 });
    hook = (state, _input, execution) => {
      const { appId, buildId } = inputOf(execution);
      if (
        appId === CONTENDED_APP &&
        buildId.endsWith(`-b${CONTENDED_FAILING_BUILD}`) &&
        state === 'SmokeTest'
      )
        throw new InjectedFaultError('smoke test target crashed (injected)');
    };

    const expectedBuilds = new Set<string>();
    const expectedRejections: string[] = [];
    const published: { id: string; times: number }[] = [];
    const burst = (message: Record<string, unknown>, times: number) => {
      const first = pipeline.publishTrigger(message);
      for (let i = 1; i < times; i++) {
        if (i % 2 === 1)
          pipeline.sns.redeliver(first); // SNS at-least-once: same message id
        else pipeline.publishTrigger(message); // Jenkins retried its publish: a new message id
      }
      published.push({ id: String(message.buildId), times });
    };

    // ---- act: everything is published before anything is awaited ------------------------------
    const startedAt = Date.now();
    for (let n = 1; n <= DISTINCT_APPS; n++) {
      const appId = appIdOf(n);
      const buildId = `${appId}-b1`;
      expectedBuilds.add(buildId);
      burst(triggerMessage(bucket, { appId, buildId }), DUPLICATED_APPS.has(n) ? 5 : 1);
    }
    for (let b = 1; b <= CONTENDED_BUILDS; b++) {
      const buildId = `${CONTENDED_APP}-b${b}`;
      expectedBuilds.add(buildId);
      burst(
        triggerMessage(bucket, { appId: CONTENDED_APP, buildId, version: `2.${b}.0` }),
        b === CONTENDED_DUPLICATED_BUILD ? 5 : 1,
      );
    }
    // The same build id with two different contents at once: one runs, the other is rejected.
    expectedBuilds.add(`${CONFLICT_APP}-b1`);
    burst(
      triggerMessage(bucket, { appId: CONFLICT_APP, buildId: `${CONFLICT_APP}-b1`, version: '1.0.0' }),
      1,
    );
    burst(
      triggerMessage(bucket, { appId: CONFLICT_APP, buildId: `${CONFLICT_APP}-b1`, version: '9.9.9' }),
      1,
    );
    expectedRejections.push('conflict');
    // Malformed messages in the middle of the load.
    for (const bad of [
      { ...triggerMessage(bucket, { appId: 'conc-bad' }), appId: 'Conc_Bad' },
      { ...triggerMessage(bucket, { appId: 'conc-wrong-env' }), environment: 'prod' },
      '{"schemaVersion": 1, "appId": "conc-trunc',
    ]) {
      pipeline.publishTrigger(bad);
      expectedRejections.push('malformed');
    }
    const executions = await pipeline.settle();
    const wallMs = Date.now() - startedAt;

    // ---- assert: every delivery accounted for ---------------------------------------------------
    const expectedDeliveries = published.reduce((sum, p) => sum + p.times, 0) + 3;
    expect(deliveries).toHaveLength(expectedDeliveries);
    expect(deliveries.filter((d) => d.error)).toEqual([]);
    expect(pipeline.sqs.messages(pipeline.name('TriggerDeadLetterQueue'))).toEqual([]);
    const arns = new Set(executions.map((e) => e.executionArn));
    // Exactly one delivery reports each start; every other delivery of a build is a DUPLICATE.
    const starts = deliveries.filter((d) => d.outcome?.status === 'STARTED');
    expect(starts).toHaveLength(executions.length);
    expect(new Set(starts.map((d) => d.outcome?.status === 'STARTED' && d.outcome.executionArn)).size).toBe(
      executions.length,
    );
    for (const d of deliveries) {
      if (d.outcome?.status === 'STARTED' || d.outcome?.status === 'DUPLICATE')
        expect(arns).toContain(d.outcome.executionArn);
      else expect(d.outcome?.status).toBe('REJECTED');
    }
    const rejected = deliveries.filter((d) => d.outcome?.status === 'REJECTED');
    expect(rejected).toHaveLength(expectedRejections.length);
    const auditedRejections = await pipeline.rejections();
    const queuedRejections = pipeline
      .rejectionsQueue()
      .map((m) => JSON.parse(m.body) as { snsMessageId: string });
    for (const d of rejected) {
      expect(auditedRejections).toContainEqual(
        expect.objectContaining({ status: 'REJECTED', messageId: d.messageId }),
      );
      expect(queuedRejections).toContainEqual(expect.objectContaining({ snsMessageId: d.messageId }));
    }

    // ---- exactly one execution per build id -----------------------------------------------------
    const perBuild = new Map<string, ExecutionRecord[]>();
    for (const e of executions)
      perBuild.set(inputOf(e).buildId, [...(perBuild.get(inputOf(e).buildId) ?? []), e]);
    expect([...perBuild.keys()].sort()).toEqual([...expectedBuilds].sort());
    const maxPerBuild = Math.max(...[...perBuild.values()].map((list) => list.length));
    expect(maxPerBuild).toBe(1);
    expect(new Set(executions.map((e) => e.name)).size).toBe(executions.length);

    // ---- lock: never two runs of one app+environment inside it at once --------------------------
    expect(overlaps).toEqual([]);
    const contended = executions.filter((e) => inputOf(e).appId === CONTENDED_APP);
    expect(contended).toHaveLength(CONTENDED_BUILDS);
    const intervals = contended
      .map((e) => ({
        name: e.name,
        from: e.events.find((ev) => ev.type === 'StateExited' && ev.state === 'AcquireLock')?.timestamp,
        to: e.events.find((ev) => ev.type === 'StateEntered' && RELEASE_STATES.has(ev.state ?? ''))
          ?.timestamp,
      }))
      .sort((a, b) => (a.from ?? 0) - (b.from ?? 0));
    let eventOverlaps = 0;
    for (const [i, interval] of intervals.entries()) {
      expect(interval.from).toEqual(expect.any(Number));
      expect(interval.to).toEqual(expect.any(Number));
      const next = intervals[i + 1];
      if (next && (next.from ?? 0) < (interval.to ?? 0)) eventOverlaps++;
    }
    expect(eventOverlaps).toBe(0);
    // They did contend: all but the first found the lock taken and waited.
    const waited = contended.filter((e) =>
      e.events.some((ev) => ev.type === 'StateRetried' && ev.state === 'AcquireLock'),
    );
    expect(waited.length).toBeGreaterThanOrEqual(CONTENDED_BUILDS - 1);

    // ---- outcomes: the failures are the planned ones, every other run succeeded -----------------
    const expectedToFail = (e: ExecutionRecord) => {
      const { appId, buildId } = inputOf(e);
      return (
        [...FAILING_APPS].map(appIdOf).includes(appId) ||
        (appId === CONTENDED_APP && buildId.endsWith(`-b${CONTENDED_FAILING_BUILD}`))
      );
    };
    expect(
      executions
        .filter((e) => e.status !== (expectedToFail(e) ? 'FAILED' : 'SUCCEEDED'))
        .map((e) => ({
          name: e.name,
          status: e.status,
          error: e.error,
          cause: e.cause?.slice(0, 300),
        })),
    ).toEqual([]);

    // ---- the lock item carries the TTL attribute DynamoDB expires it by --------------------------
    const ttlAttribute = pipeline.template.resourceProperties('CoordinationTable')
      .TimeToLiveSpecification as {
      AttributeName: string;
      Enabled: boolean;
    };
    expect(ttlAttribute.Enabled).toBe(true);
    const ttlSeconds = pipeline.template.stage.lock.ttlSeconds;
    expect(observedLocks).toHaveLength(executions.length);
    for (const { executionArn, item } of observedLocks) {
      expect(item?.holder).toBe(executionArn);
      const expiresAt = item?.[ttlAttribute.AttributeName];
      expect(typeof expiresAt).toBe('number'); // epoch seconds, as DynamoDB TTL requires
      expect(Number(expiresAt) - Math.floor(Date.parse(String(item?.lockedAt)) / 1000)).toBe(ttlSeconds);
    }

    // ---- no lost audit record -------------------------------------------------------------------
    let auditMissing = 0;
    const missing: string[] = [];
    const note = (what: string) => {
      auditMissing++;
      missing.push(what);
    };
    const appIds = [...new Set(executions.map((e) => inputOf(e).appId))];
    const runsByApp = new Map(
      await Promise.all(appIds.map(async (a) => [a, await pipeline.runsOf(a)] as const)),
    );
    for (const e of executions) {
      const { appId } = inputOf(e);
      const runId = e.name.split('-').pop() ?? '';
      const runs = runsByApp.get(appId) ?? [];
      const run = runs.find((r) => r.runId === runId);
      if (!run) {
        note(`${e.name}: no run item`);
        continue;
      }
      if (run.executionArn !== e.executionArn) note(`${e.name}: run item names ${String(run.executionArn)}`);
      if (run.status !== e.status) note(`${e.name}: run item ${String(run.status)}, execution ${e.status}`);
      if (!run.finishedAt) note(`${e.name}: no finishedAt`);
      const items = await pipeline.runItems(runId);
      const has = (entity: string, type: string) =>
        items.some((i) => i.entity === entity && (i.type === type || i.resourceType === type));
      const required =
        e.status === 'SUCCEEDED'
          ? [
              ['EVENT', 'PRE_PROVISIONED'],
              ['EVENT', 'RELEASE_LIVE'],
              ['EVENT', 'STAGE_TIMINGS'],
              ['RESOURCE', 'PARAMETER'],
              ['RESOURCE', 'AMI'],
              ['RESOURCE', 'LOG_SUBSCRIPTION'],
            ]
          : [
              ['EVENT', 'PRE_PROVISIONED'],
              ['RESOURCE', 'PARAMETER'],
              ['RESOURCE', 'AMI'],
            ];
      for (const [entity, type] of required)
        if (!has(entity!, type!)) note(`${e.name}: no ${entity} ${type}`);
      if (e.status === 'FAILED') {
        if (!run.failedStage || !run.errorName) note(`${e.name}: failure not recorded`);
        // A failed run leaves no orphan, even under load.
        expect(pipeline.leftovers(runId)).toEqual({
          images: [],
          snapshots: [],
          grants: [],
          stacks: [],
          runningCommands: [],
        });
      }
    }
    for (const [appId, runs] of runsByApp) {
      const ofApp = executions.filter((e) => inputOf(e).appId === appId);
      if (runs.length !== ofApp.length)
        note(`${appId}: ${runs.length} run items for ${ofApp.length} executions`);
    }
    expect(missing).toEqual([]);

    // ---- nothing left behind -------------------------------------------------------------------
    const coordination = await scanCoordination();
    const locksLeft = coordination.filter((i) => String(i.pk).startsWith('LOCK#'));
    expect(locksLeft).toEqual([]);
    expect(pipeline.sfn.pendingTokens()).toBe(0);

    // ---- figures (printed, never asserted) -----------------------------------------------------
    const durations = executions
      .filter((e) => !inputOf(e).appId.startsWith(CONTENDED_APP))
      .map((e) => (e.stopDate?.getTime() ?? 0) - e.startDate.getTime())
      .sort((a, b) => a - b);
    const contendedSpan =
      Math.max(...contended.map((e) => e.stopDate?.getTime() ?? 0)) -
      Math.min(...contended.map((e) => e.startDate.getTime()));
    console.log(
      [
        `concurrency: runs started ${executions.length}`,
        `deliveries ${deliveries.length} (${['STARTED', 'DUPLICATE', 'REJECTED']
          .map((status) => `${status} ${deliveries.filter((d) => d.outcome?.status === status).length}`)
          .join(' / ')})`,
        `rejected ${rejected.length}`,
        `executions per build id max ${maxPerBuild}`,
        `overlaps ${overlaps.length + eventOverlaps}`,
        `locks left ${locksLeft.length}`,
        `audit records missing ${auditMissing}`,
        `| time per run avg ${Math.round(durations.reduce((s, d) => s + d, 0) / durations.length)} ms` +
          ` p50 ${percentile(durations, 50)} ms p95 ${percentile(durations, 95)} ms max ${durations.at(-1)} ms`,
        `${CONTENDED_BUILDS} serialized builds of ${CONTENDED_APP} in ${contendedSpan} ms`,
        `wall ${wallMs} ms (${Math.round(wallMs / executions.length)} ms per run amortized)`,
      ].join(', '),
    );
  }, 120_000);

  it('takes over the lock of a run that died once its TTL has passed, and the dead run cannot free the new holder', async () => {
    const appId = 'conc-orphan';
    const ttlSeconds = pipeline.template.stage.lock.ttlSeconds;
    const deps = {
      db: pipeline.db,
      tableName: pipeline.name('CoordinationTable'),
      ttlSeconds,
      now: () => new Date(),
    };
    const dead = `${pipeline.template.resource('AmiPipelineStateMachine').ref.replace(':stateMachine:', ':execution:')}:${appId}-${ENV}-dead`;
    // A run took the lock (with the lock worker's own code) a TTL and a minute ago and died holding it.
    await acquireLock(
      { appId, environment: ENV, runId: 'dead', executionArn: dead },
      { ...deps, now: () => new Date(Date.now() - (ttlSeconds + 60) * 1000) },
    );
    const orphan = await pipeline.lockItem(appId, ENV);
    expect(orphan).toMatchObject({ holder: dead, runId: 'dead' });
    expect(Number(orphan?.expiresAt)).toBeLessThan(Date.now() / 1000);

    // Before it expires a lock is not taken over (the control for the takeover below).
    const fresh = `${dead}-fresh`;
    await acquireLock({ appId: 'conc-held', environment: ENV, runId: 'fresh', executionArn: fresh }, deps);
    await expect(
      acquireLock({ appId: 'conc-held', environment: ENV, runId: 'other', executionArn: `${fresh}-2` }, deps),
    ).rejects.toThrow(LockHeldError);
    await pipeline.db.send(
      new DeleteItemCommand({
        TableName: deps.tableName,
        Key: { pk: { S: lockKey('conc-held', ENV).pk } },
      }),
    );

    // Three builds race for the expired lock; while the winner holds it, the dead run's release
    // (the ASL's own ReleaseLock condition) must fail and leave the lock alone.
    const { ConditionExpression } = (
      pipeline.template.stateMachineDefinition() as {
        States: { ReleaseLock: { Parameters: { ConditionExpression: string } } };
      }
    ).States.ReleaseLock.Parameters;
    expect(ConditionExpression).toBe('holder = :me');
    const releaseAttempts: string[] = [];
    hook = async (state, _input, execution) => {
      if (state !== 'PreProvision' || inputOf(execution).appId !== appId) return;
      try {
        await pipeline.db.send(
          new DeleteItemCommand({
            TableName: deps.tableName,
            Key: { pk: { S: lockKey(appId, ENV).pk } },
            ConditionExpression,
            ExpressionAttributeValues: { ':me': { S: dead } },
          }),
        );
        releaseAttempts.push('deleted');
      } catch (err) {
        const stillMine = (await pipeline.lockItem(appId, ENV))?.holder === execution.executionArn;
        releaseAttempts.push(
          err instanceof ConditionalCheckFailedException && stillMine
            ? 'refused'
            : `${String(err)} ${stillMine}`,
        );
      }
    };
    for (let b = 1; b <= 3; b++)
      pipeline.publishTrigger(
        triggerMessage(bucket, { appId, buildId: `${appId}-b${b}`, version: `1.${b}.0` }),
      );
    const executions = (await pipeline.settle()).filter((e) => inputOf(e).appId === appId);

    expect(executions.map((e) => e.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(releaseAttempts).toEqual(['refused', 'refused', 'refused']);
    // The first taker did not wait: the expired lock was free to it.
    const first = [...executions].sort(
      (a, b) =>
        (a.events.find((ev) => ev.type === 'StateExited' && ev.state === 'AcquireLock')?.timestamp ?? 0) -
        (b.events.find((ev) => ev.type === 'StateExited' && ev.state === 'AcquireLock')?.timestamp ?? 0),
    )[0];
    expect(first?.events.some((ev) => ev.type === 'StateRetried' && ev.state === 'AcquireLock')).toBe(false);
    expect(overlaps).toEqual([]);
    expect((await scanCoordination()).filter((i) => String(i.pk).startsWith('LOCK#'))).toEqual([]);
  }, 60_000);

  /**
   * Step Functions answers an identical StartExecution for a running execution with the original
   * ARN, so without the trigger's claim (shared/trigger/claim.ts) a message delivered 5× at once
   * yields five STARTED outcomes for one run. With it, exactly one delivery starts and reports it.
   */
  it('reports a message delivered five times at once as one start and four duplicates', async () => {
    const appId = 'conc-echo';
    const before = deliveries.length;
    const first = pipeline.publishTrigger(triggerMessage(bucket, { appId, buildId: `${appId}-b1` }));
    for (let i = 0; i < 4; i++) pipeline.sns.redeliver(first);
    await pipeline.settle();

    const statuses = deliveries.slice(before).map((d) => d.outcome?.status);
    expect(pipeline.sfn.list().filter((e) => inputOf(e).appId === appId)).toHaveLength(1);
    expect(statuses.sort()).toEqual(['DUPLICATE', 'DUPLICATE', 'DUPLICATE', 'DUPLICATE', 'STARTED']);
  });

  /**
   * The longest the definition lets a run hold its lock: every state's timeout on the slowest path
   * from PreProvision (lock taken) to a state that releases it, with the traffic shift as long as a
   * valid app config can make it and a failure at the last moment (compensation, green destroyed).
   */
  const longestLockHold = (): number => {
    type State = {
      Type: string;
      Next?: string;
      End?: boolean;
      Default?: string;
      TimeoutSeconds?: number;
      Catch?: { Next: string }[];
      Choices?: { Next: string }[];
      ItemProcessor?: { StartAt: string; States: Record<string, State> };
      ItemsPath?: string;
      MaxConcurrency?: number;
      Retry?: { ErrorEquals: string[]; MaxAttempts?: number }[];
    };
    const definition = pipeline.template.stateMachineDefinition() as unknown as {
      States: Record<string, State>;
    };
    const END = '(end of iteration)';
    const longest = (states: Record<string, State>, name: string, until: (n: string) => boolean): number => {
      if (until(name)) return 0;
      // NeedsApproval routes on the stage's approval.required, the same setting longestRunSeconds reads.
      if (name === 'AwaitApproval' && !pipeline.template.stage.approval.required)
        return Number.NEGATIVE_INFINITY;
      const state = states[name];
      if (!state) return Number.NEGATIVE_INFINITY;
      let own = state.TimeoutSeconds ?? 0;
      if (state.Type === 'Wait') own = MAX_SOAK_SECONDS;
      if (state.Type === 'Map' && state.ItemProcessor) {
        const inner = state.ItemProcessor;
        const iteration = longest(inner.States, inner.StartAt, (n) => n === END);
        if (state.ItemsPath === '$.stages.distribute.copies') {
          // One item per distribution region of the stage, MaxConcurrency at a time; a copy still
          // pending is waited for again (the CopyPendingError retrier), each attempt a whole timeout.
          const regions = Object.keys(pipeline.template.stage.distribution.regions).length;
          const pendingRetries =
            inner.States.CopyToRegion?.Retry?.find((r) => r.ErrorEquals.includes('CopyPendingError'))
              ?.MaxAttempts ?? 0;
          own = Math.ceil(regions / (state.MaxConcurrency ?? 1)) * (1 + pendingRetries) * iteration;
        } else {
          own = MAX_TRAFFIC_STEPS * iteration;
        }
      }
      const next = [
        state.Next,
        state.End ? END : undefined,
        state.Default,
        ...(state.Catch ?? []),
        ...(state.Choices ?? []),
      ]
        .map((n) => (typeof n === 'string' ? n : n?.Next))
        .filter((n): n is string => typeof n === 'string');
      // A failure can come at the end of a state: its whole timeout is spent before the Catch.
      return own + Math.max(Number.NEGATIVE_INFINITY, ...next.map((n) => longest(states, n, until)));
    };
    return longest(definition.States, 'PreProvision', (n) => RELEASE_STATES.has(n));
  };

  it('bounds the longest lock hold by the definition and the app schema (10 traffic steps, 3600 s soak)', () => {
    const traffic = (steps: number, soakSeconds: number) =>
      appConfigSchema.safeParse(
        sampleAppConfig({
          traffic: {
            steps: Array.from({ length: steps }, (_, i) => Math.round(((i + 1) * 100) / steps)),
            soakSeconds,
            max5xxRate: 0.01,
          },
        }),
      ).success;
    expect(traffic(MAX_TRAFFIC_STEPS, MAX_SOAK_SECONDS)).toBe(true);
    expect(traffic(MAX_TRAFFIC_STEPS + 1, MAX_SOAK_SECONDS)).toBe(false);
    expect(traffic(MAX_TRAFFIC_STEPS, MAX_SOAK_SECONDS + 1)).toBe(false);

    const { bake, provision, validate } = pipeline.template.stage.commands;
    const worst = longestLockHold();
    expect(Number.isFinite(worst)).toBe(true);
    // At least the three commands, the whole traffic shift and a green-stack destroy.
    expect(worst).toBeGreaterThan(
      bake.timeoutSeconds +
        provision.timeoutSeconds * 2 +
        validate.timeoutSeconds +
        MAX_TRAFFIC_STEPS * MAX_SOAK_SECONDS,
    );
  });

  /**
   * The TTL frees the lock of a run that died; it must never free the lock of a run still alive, or
   * the next build of the app runs beside it (two runs moving one listener's weights). The stage
   * config's load-time check (shared/config/stage.ts longestRunSeconds) must cover every path the
   * definition allows, so no stage config that loads can be too short.
   */
  it('gives the lock a TTL longer than the longest run a valid app config allows', () => {
    const worst = longestLockHold();
    const ttlSeconds = pipeline.template.stage.lock.ttlSeconds;
    console.log(`lock TTL ${ttlSeconds} s; longest lock hold the definition allows ${worst} s`);
    expect(ttlSeconds).toBeGreaterThanOrEqual(worst);
    expect(longestRunSeconds(pipeline.template.stage)).toBeGreaterThanOrEqual(worst);
  });
});

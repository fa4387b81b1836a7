import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ExecutionAlreadyExists, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { SSMClient } from '@aws-sdk/client-ssm';
import * as z from 'zod';
import { auditKeys, type AuditRepository } from '../audit';
import { provisionResultSchema } from '../commands/contract';
import { AuditConflictError, errorMessage, errorName, ReleaseLiveError } from '../errors';
import { loadRunConfig, runConfigParameterName } from '../run-config';
import { runRefSchema } from '../run-ref';
import { trafficPlanSchema } from './traffic';

/**
 * The live release per app and environment: one item, `LIVE#<env>` / `APP#<appId>`, so "what is
 * live for app X in prod" and "what is live in prod" are each one Query. It is the audit table's
 * only pointer that moves; its history is the RELEASE_LIVE events of each run.
 */

export const recordReleaseInputSchema = z.object({
  run: runRefSchema,
  runConfigParameter: z.string().startsWith('/ami-pipeline/'),
  amiId: z.string().regex(/^ami-[a-f0-9]{8,17}$/),
  provision: provisionResultSchema,
  plan: trafficPlanSchema,
  startedAt: z.iso.datetime({ offset: true }),
});

export type RecordReleaseInput = z.infer<typeof recordReleaseInputSchema>;

export interface RecordReleaseDeps {
  db: DynamoDBDocumentClient;
  sfn: SFNClient;
  decommissionStateMachineArn: string;
  stage: string;
  tableName: string;
  audit: AuditRepository;
  ssm: SSMClient;
  /** How long the previous release stays up after the switch before it is decommissioned. */
  decommissionAfterSeconds: number;
  now: () => Date;
}

export interface RecordReleaseOutput {
  previousRunId: string | null;
  decommissionAt: string | null;
  stageTimings: Record<string, number>;
}

/** Per-stage durations (seconds) from the run's audit events: each stage ends when its event is written. */
const STAGE_EVENTS: [string, (e: Record<string, unknown>) => boolean][] = [
  ['preProvision', (e) => e.type === 'PRE_PROVISIONED'],
  ['bake', (e) => e.type === 'COMMAND_SUCCESS' && e.stage === 'bake'],
  ['provision', (e) => e.type === 'COMMAND_SUCCESS' && e.stage === 'provision'],
  ['validate', (e) => e.type === 'COMMAND_SUCCESS' && e.stage === 'validate'],
  [
    'trafficShift',
    (e) => e.type === 'TRAFFIC_SHIFTED' && (e.detail as { percent?: number } | undefined)?.percent === 100,
  ],
];

/**
 * After the last traffic step: the new release becomes the live one for its app and environment,
 * the previous one is scheduled for decommission, and the run gets its stage timings.
 */
export const recordRelease = async (
  input: RecordReleaseInput,
  deps: RecordReleaseDeps,
): Promise<RecordReleaseOutput> => {
  const { run } = input;
  const config = await loadRunConfig(deps.ssm, input.runConfigParameter);
  const now = deps.now();
  const key = auditKeys.live(run.environment, run.appId);
  const { Item: current } = await deps.db.send(
    new GetCommand({ TableName: deps.tableName, Key: key, ConsistentRead: true }),
  );
  // A retried RecordRelease finds its own run already live: the release it replaced is the one
  // that item recorded, and the pointer must not be written again.
  const retried = current?.runId === run.runId;
  const previousRunId = retried
    ? ((current?.previousRunId as string | null) ?? null)
    : current
      ? String(current.runId)
      : null;
  const previous = retried ? (current?.previousRelease as Record<string, unknown> | undefined) : current;
  // Checked before anything is written: the pointer must not move unless the old release can be
  // scheduled for decommission.
  if (previousRunId && (typeof previous?.amiId !== 'string' || typeof previous.executionArn !== 'string')) {
    throw new AuditConflictError(
      `the live item of ${run.appId} lacks the previous release's AMI or execution`,
    );
  }
  if (!retried) {
    try {
      await deps.db.send(
        new PutCommand({
          TableName: deps.tableName,
          Item: {
            ...key,
            entity: 'LIVE',
            appId: run.appId,
            environment: run.environment,
            runId: run.runId,
            version: config.release.version,
            buildId: config.release.buildId,
            executionArn: run.executionArn,
            amiId: input.amiId,
            baseImage: config.app.baseImage,
            appConfigUri: config.release.appConfigUri,
            artifact: config.release.artifact,
            targetGroupArn: input.provision.targetGroupArn,
            asgName: input.provision.asgName,
            launchTemplateId: input.provision.launchTemplateId,
            listenerArn: input.plan.listenerArn,
            since: now.toISOString(),
            previousRunId,
            previousRelease: current
              ? {
                  asgName: current.asgName,
                  amiId: current.amiId,
                  version: current.version,
                  executionArn: current.executionArn,
                }
              : null,
          },
          // The lock serialises runs of an app+environment; this makes a lost update impossible anyway.
          ConditionExpression: current ? 'runId = :previous' : 'attribute_not_exists(pk)',
          ...(current ? { ExpressionAttributeValues: { ':previous': previousRunId } } : {}),
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      // The SDK retries a put whose answer was lost (a timeout, a 5xx after the write): the
      // pointer its retry finds may be our own, and then the release is live.
      const { Item: found } = await deps.db.send(
        new GetCommand({ TableName: deps.tableName, Key: key, ConsistentRead: true }),
      );
      if (found?.runId !== run.runId) {
        throw new AuditConflictError(
          `the live release of ${run.appId} in ${run.environment} changed during this run`,
          { cause: err },
        );
      }
    }
  }

  // The pointer has moved: the release is live. What follows must not send the run to
  // compensation (which would roll back a live release): its errors become ReleaseLiveError, which
  // the state machine retries and then reports without undoing anything.
  try {
    return await afterCommit(input, deps, now, previousRunId, previous);
  } catch (err) {
    throw new ReleaseLiveError(
      `${run.appId} ${config.release.version} is live, but recording it failed: ${errorName(err)}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
};

const afterCommit = async (
  input: RecordReleaseInput,
  deps: RecordReleaseDeps,
  now: Date,
  previousRunId: string | null,
  previous: Record<string, unknown> | undefined,
): Promise<RecordReleaseOutput> => {
  const { run } = input;
  const at = now.toISOString();
  // Read first: a retry (ReleaseLiveError, a lost answer) finds what its first attempt recorded
  // and does not record it twice.
  const events = await deps.audit.eventsOf(run.runId);
  await deps.audit.recordEvent(
    {
      runId: run.runId,
      type: 'RELEASE_LIVE',
      stage: 'PostProvision',
      at,
      detail: { previousRunId, amiId: input.amiId, targetGroupArn: input.provision.targetGroupArn },
    },
    events,
  );
  let decommissionAt: string | null = null;
  if (previousRunId) {
    decommissionAt = new Date(now.getTime() + deps.decommissionAfterSeconds * 1000).toISOString();
    await scheduleDecommission(previousRunId, previous, run, decommissionAt, deps);
    await deps.audit.recordEvent({
      runId: previousRunId,
      type: 'DECOMMISSION_SCHEDULED',
      stage: 'PostProvision',
      at,
      id: run.runId,
      detail: { replacedBy: run.runId, decommissionAt, asgName: previous?.asgName, amiId: previous?.amiId },
    });
  }

  const stageTimings: Record<string, number> = {};
  let from = Date.parse(input.startedAt);
  for (const [stage, matches] of STAGE_EVENTS) {
    const event = events.find(matches);
    if (!event) continue;
    const end = Date.parse(String(event.at));
    stageTimings[stage] = Math.max(0, Math.round((end - from) / 1000));
    from = end;
  }
  await deps.audit.recordEvent(
    {
      runId: run.runId,
      type: 'STAGE_TIMINGS',
      stage: 'PostProvision',
      at,
      detail: { seconds: stageTimings },
    },
    events,
  );
  return { previousRunId, decommissionAt, stageTimings };
};

/**
 * Starts the replaced release's decommission (its own state machine: wait, destroy the stack,
 * retire the AMI). The execution name is the old run's, so a retried RecordRelease starts it once.
 */
const scheduleDecommission = async (
  previousRunId: string,
  previous: Record<string, unknown> | undefined,
  run: RecordReleaseInput['run'],
  decommissionAt: string,
  deps: RecordReleaseDeps,
): Promise<void> => {
  const amiId = String(previous?.amiId);
  const executionArn = String(previous?.executionArn);
  try {
    await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: deps.decommissionStateMachineArn,
        name: `decommission-${previousRunId}`,
        input: JSON.stringify({
          run: { runId: previousRunId, appId: run.appId, environment: run.environment, executionArn },
          runConfigParameter: runConfigParameterName(deps.stage, run.appId, previousRunId),
          amiId,
          replacedBy: run.runId,
          decommissionAt,
        }),
      }),
    );
  } catch (err) {
    if (!(err instanceof ExecutionAlreadyExists)) throw err;
  }
};

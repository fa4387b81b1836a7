import { GetObjectCommand, NoSuchKey, type S3Client } from '@aws-sdk/client-s3';
import {
  InvalidToken,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  TaskDoesNotExist,
  TaskTimedOut,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { ListCommandInvocationsCommand, ListCommandsCommand, type SSMClient } from '@aws-sdk/client-ssm';
import type { z } from 'zod';
import type { AuditRepository } from '../audit';
import { logger } from '../logger';
import { describeIssues } from '../validation';
import {
  bakeResultSchema,
  destroyResultSchema,
  provisionResultSchema,
  resultKey,
  validateResultSchema,
  type CommandStep,
} from './contract';
import type { CommandTask, TaskStore } from './tasks';

export interface CompletionDeps {
  tasks: TaskStore;
  sfn: SFNClient;
  ssm: SSMClient;
  s3: S3Client;
  audit: AuditRepository;
  stage: string;
  artifactsBucket: string;
  reportsBucket: string;
  now: () => Date;
}

export { TERMINAL_STATUSES } from './contract';

/** The error each step's failure is reported under (the state machine's Catch matches on it). */
export const FAILURE_ERRORS: Record<CommandStep, string> = {
  bake: 'BakeFailedError',
  provision: 'ProvisionFailedError',
  validate: 'ValidationFailedError',
};

const CAUSE_TAIL_BYTES = 2048;

export type CompletionOutcome = 'SUCCEEDED' | 'FAILED' | 'DUPLICATE' | 'STALE' | 'UNKNOWN';

/**
 * Completes the task waiting for an SSM command: on Success, read and validate its result.json and
 * SendTaskSuccess with it; otherwise SendTaskFailure with the step's error and the tail of stderr.
 * Safe to call twice for one command (a duplicated event, or the reconciler and the event racing):
 * a task already done is left alone, and a token Step Functions no longer knows is not an error.
 */
export const completeCommand = async (
  commandId: string,
  status: string,
  deps: CompletionDeps,
): Promise<CompletionOutcome> => {
  const task = (await deps.tasks.findByCommand(commandId)) ?? (await findByComment(commandId, deps));
  if (!task || task.commandId !== commandId) {
    logger.warn('status change for a command no task is waiting for', { commandId, status });
    return 'UNKNOWN';
  }
  if (task.status === 'DONE') return 'DUPLICATE';

  const result = status === 'Success' ? await readResult(task, deps) : undefined;
  let outcome: CompletionOutcome;
  try {
    if (result?.ok) {
      await deps.sfn.send(
        new SendTaskSuccessCommand({ taskToken: task.taskToken, output: JSON.stringify(result.value) }),
      );
      outcome = 'SUCCEEDED';
    } else {
      const reason = result
        ? result.reason
        : `${task.step} command ${commandId} ended ${status}: ${await stderrTail(commandId, deps)}`;
      await deps.sfn.send(
        new SendTaskFailureCommand({
          taskToken: task.taskToken,
          error: FAILURE_ERRORS[task.step],
          cause: reason.slice(0, 32000),
        }),
      );
      outcome = 'FAILED';
      // What compensation or decommission could not destroy stays up: the stage's
      // CompensationFailures alarm counts this line (a metric filter in serverless.yml).
      if (task.mode === 'destroy') logger.error('stack destroy failed', { runId: task.runId, commandId });
    }
  } catch (err) {
    // The execution moved on (state timeout, abort) or this token was already answered.
    if (!(err instanceof TaskTimedOut || err instanceof TaskDoesNotExist || err instanceof InvalidToken))
      throw err;
    logger.warn('task token no longer accepted; completing the task record only', {
      commandId,
      step: task.step,
    });
    outcome = 'STALE';
  }
  // Inventory first, then the task record: if a write fails, the retried event finds the task still
  // pending and records again (resource writes are idempotent; a COMMAND_* event may repeat).
  if (result?.ok) await recordResources(task, result.value, deps);
  await deps.audit.recordEvent({
    runId: task.runId,
    type: `COMMAND_${status.toUpperCase()}`,
    stage: task.step,
    at: deps.now().toISOString(),
    id: commandId,
    detail: { commandId, instanceId: task.instanceId, mode: task.mode, outcome },
  });
  if (!(await deps.tasks.complete(task, `${status}/${outcome}`))) return 'DUPLICATE';
  return outcome;
};

type ReadResult = { ok: true; value: Record<string, unknown> } | { ok: false; reason: string };

const schemaFor = (task: CommandTask): z.ZodType<Record<string, unknown>> => {
  if (task.step === 'provision' && task.mode === 'destroy') return destroyResultSchema;
  return { bake: bakeResultSchema, provision: provisionResultSchema, validate: validateResultSchema }[
    task.step
  ];
};

const readResult = async (task: CommandTask, deps: CompletionDeps): Promise<ReadResult> => {
  const key = resultKey(deps.stage, task.appId, task.runId, task.step);
  let text: string;
  try {
    const object = await deps.s3.send(new GetObjectCommand({ Bucket: deps.artifactsBucket, Key: key }));
    text = (await object.Body?.transformToString('utf8')) ?? '';
  } catch (err) {
    if (err instanceof NoSuchKey)
      return {
        ok: false,
        reason: `${task.step} command succeeded but wrote no s3://${deps.artifactsBucket}/${key}`,
      };
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: `${task.step} result.json is not valid JSON` };
  }
  const parsed = schemaFor(task).safeParse(json);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : {
        ok: false,
        reason: `${task.step} result.json rejected: ${describeIssues(parsed.error, 'result').join('; ')}`,
      };
};

/** The last bytes of the command's stderr (from its S3 output), or SSM's own output excerpt. */
const stderrTail = async (commandId: string, deps: CompletionDeps): Promise<string> => {
  const { CommandInvocations } = await deps.ssm.send(
    new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }),
  );
  const invocation = CommandInvocations?.[0];
  const url = invocation?.StandardErrorUrl;
  if (url) {
    const match = /^https:\/\/[^/]+\/([^/]+)\/(.+)$/.exec(url);
    if (match?.[1] && match[2]) {
      try {
        const object = await deps.s3.send(
          new GetObjectCommand({
            Bucket: match[1],
            Key: decodeURIComponent(match[2]),
            Range: `bytes=-${CAUSE_TAIL_BYTES}`,
          }),
        );
        const text = (await object.Body?.transformToString('utf8')) ?? '';
        if (text.trim()) return text.trim().slice(-CAUSE_TAIL_BYTES);
      } catch (err) {
        logger.warn('could not read command stderr from S3', { commandId, error: (err as Error).name });
      }
    }
  }
  const output = invocation?.CommandPlugins?.map((p) => p.Output ?? '').join('\n') ?? '';
  return output.trim().slice(-CAUSE_TAIL_BYTES) || invocation?.StatusDetails || 'no output';
};

/** After a crash between SendCommand and recording its id, the command's Comment still names the task. */
const findByComment = async (commandId: string, deps: CompletionDeps): Promise<CommandTask | undefined> => {
  const { Commands } = await deps.ssm.send(new ListCommandsCommand({ CommandId: commandId }));
  const match = /^ami-pipeline ([a-f0-9]{20}) (bake|provision|validate) /.exec(Commands?.[0]?.Comment ?? '');
  if (!match?.[1] || !match[2]) return undefined;
  const task = await deps.tasks.get(match[1], match[2] as CommandStep);
  if (!task || task.commandId) return task;
  // Adopt the command the crashed worker never recorded.
  await deps.tasks.setCommand(task, commandId, Commands?.[0]?.InstanceIds?.[0] ?? 'unknown');
  return { ...task, commandId };
};

/** What a successful command made, into the audit inventory. */
const recordResources = async (task: CommandTask, result: Record<string, unknown>, deps: CompletionDeps) => {
  const run = await deps.audit.findRun(task.runId);
  if (!run) return;
  const at = deps.now().toISOString();
  const base = {
    runId: task.runId,
    appId: task.appId,
    environment: task.environment,
    executionArn: task.executionArn,
    buildId: String(run.buildId),
    version: String(run.version),
    createdAt: at,
  };
  const record = (resourceType: string, resourceId: string, detail?: Record<string, unknown>) =>
    deps.audit.recordResource({ ...base, resourceType, resourceId, ...(detail ? { detail } : {}) });
  if (task.step === 'bake') {
    const bake = bakeResultSchema.parse(result);
    await record('AMI', bake.amiId, { region: bake.region, snapshotIds: bake.snapshotIds });
    for (const snapshotId of bake.snapshotIds) await record('SNAPSHOT', snapshotId, { amiId: bake.amiId });
  } else if (task.step === 'provision' && task.mode === 'apply') {
    const provision = provisionResultSchema.parse(result);
    await record('LAUNCH_TEMPLATE', provision.launchTemplateId, { asgName: provision.asgName });
    await record('ASG', provision.asgName, { launchTemplateId: provision.launchTemplateId });
    await record('TARGET_GROUP', provision.targetGroupArn, { albDns: provision.albDns });
    await record('TERRAFORM_STATE', `${task.runId}/release`, { versionId: provision.terraformStateVersion });
  } else if (task.step === 'provision' && task.mode === 'destroy') {
    // The same destroy serves compensation (this run's execution) and decommission (its own machine).
    const decommission = task.executionArn.includes(`:execution:ami-pipeline-${deps.stage}-decommission:`);
    await deps.audit.recordEvent({
      runId: task.runId,
      type: decommission ? 'DECOMMISSIONED' : 'UNDONE',
      stage: decommission ? 'Decommission' : 'Compensate',
      at,
      id: `DESTROY_STACK#${task.runId}/release`,
      detail: { action: 'DESTROY_STACK', resource: `${task.runId}/release` },
    });
  } else if (task.step === 'validate') {
    const validate = validateResultSchema.parse(result);
    await record('INSPEC_REPORT', `s3://${deps.reportsBucket}/${validate.reportKey}`, {
      passed: validate.passed,
      failed: validate.failed,
      skipped: validate.skipped,
    });
  }
};

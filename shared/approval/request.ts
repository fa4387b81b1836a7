import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { SendTaskFailureCommand, SendTaskSuccessCommand, type SFNClient } from '@aws-sdk/client-sfn';
import * as z from 'zod';
import type { AuditRepository } from '../audit';
import { validateResultSchema } from '../commands/contract';
import { logger } from '../logger';
import { approvalRequestedSchema } from '../notification';
import { runRefSchema } from '../run-ref';
import { APPROVAL_RETENTION_SECONDS, type ApprovalItem, type ApprovalStore } from './store';
import { APPROVAL_REJECTED, rejectionCause, successOutput } from './outcome';

/** What AwaitApproval hands the approval worker (statemachines/ami-pipeline.asl.yml). */
export const approvalRequestSchema = z.object({
  action: z.literal('request'),
  taskToken: z.string().min(1).max(2048),
  run: runRefSchema,
  version: z.string().min(1),
  buildId: z.string().min(1),
  requestedBy: z.string().min(1),
  amiId: z.string().regex(/^ami-[a-f0-9]{8,17}$/),
  validate: validateResultSchema,
  /** AwaitApproval's TimeoutSeconds (the stage's approval.timeoutSeconds). */
  timeoutSeconds: z.number().int().positive(),
});

export type ApprovalRequest = z.infer<typeof approvalRequestSchema>;

export interface RequestDeps {
  approvals: ApprovalStore;
  audit: AuditRepository;
  sns: SNSClient;
  sfn: SFNClient;
  outcomeTopicArn: string;
  reportsBucket: string;
  stage: string;
  now: () => Date;
}

/** The CLI lines an approver runs (docs/approval.md); the notification carries them verbatim. */
export const decisionCommands = (stage: string, runId: string) => ({
  approveCommand: `ami-pipeline --stage ${stage} approve ${runId} --reason "<why>"`,
  rejectCommand: `ami-pipeline --stage ${stage} reject ${runId} --reason "<why>"`,
});

export interface RequestOutcome {
  runId: string;
  status: ApprovalItem['status'];
  requestedAt: string;
  expiresAt: string;
  notified: boolean;
}

/**
 * AwaitApproval's worker: parks the task token under `APPROVAL#<runId>`, records
 * APPROVAL_REQUESTED on the run and asks the outcome topic's subscribers for a decision, then
 * returns (the state keeps waiting for the token). Safe to retry: a retried attempt replaces the
 * token of the pending item, and the event and notification are sent once per run. A run whose
 * approval was decided already (a retry after the decision) has its new token answered at once
 * with that decision. Nothing returned, logged, recorded or published holds the token.
 */
export const requestApproval = async (input: ApprovalRequest, deps: RequestDeps): Promise<RequestOutcome> => {
  const now = deps.now();
  const deadline = new Date(now.getTime() + input.timeoutSeconds * 1000);
  const { run } = input;
  const pending = {
    runId: run.runId,
    appId: run.appId,
    environment: run.environment,
    executionArn: run.executionArn,
    taskToken: input.taskToken,
    requestedAt: now.toISOString(),
    deadline: deadline.toISOString(),
    expiresAt: Math.floor(deadline.getTime() / 1000) + APPROVAL_RETENTION_SECONDS,
  };
  let item = await deps.approvals.putPending(pending);
  if (!item) {
    const answered = await answerFromDecision(input, deps);
    if (answered) return answered;
    // The decision was expired meanwhile (it never reached the run): wait for a new one.
    item = await deps.approvals.putPending(pending);
    if (!item) throw new Error(`approval of run ${run.runId} changed while requesting it; try again`);
  }

  const report = `s3://${deps.reportsBucket}/${input.validate.reportKey}`;
  const inspec = {
    passed: input.validate.passed,
    failed: input.validate.failed,
    skipped: input.validate.skipped,
  };
  await deps.audit.recordEvent({
    runId: run.runId,
    type: 'APPROVAL_REQUESTED',
    at: item.requestedAt,
    stage: 'Approval',
    detail: { amiId: input.amiId, version: input.version, inspec, report, expiresAt: item.deadline },
  });

  let notified = item.notifiedAt !== undefined;
  if (!notified) {
    const message = approvalRequestedSchema.parse({
      schemaVersion: 1,
      status: 'APPROVAL_REQUESTED',
      runId: run.runId,
      appId: run.appId,
      environment: run.environment,
      version: input.version,
      buildId: input.buildId,
      requestedBy: input.requestedBy,
      executionArn: run.executionArn,
      amiId: input.amiId,
      inspec,
      report,
      requestedAt: item.requestedAt,
      expiresAt: item.deadline,
      ...decisionCommands(deps.stage, run.runId),
    });
    await deps.sns.send(
      new PublishCommand({
        TopicArn: deps.outcomeTopicArn,
        Message: JSON.stringify(message),
        // The attributes every outcome message carries, so subscription filter policies work alike.
        MessageAttributes: {
          status: { DataType: 'String', StringValue: 'APPROVAL_REQUESTED' },
          appId: { DataType: 'String', StringValue: run.appId },
          environment: { DataType: 'String', StringValue: run.environment },
          buildId: { DataType: 'String', StringValue: input.buildId },
        },
      }),
    );
    await deps.approvals.markNotified(run.runId, now.toISOString());
    notified = true;
  }
  logger.info('approval requested', { runId: run.runId, expiresAt: item.deadline });
  return {
    runId: run.runId,
    status: item.status,
    requestedAt: item.requestedAt,
    expiresAt: item.deadline,
    notified,
  };
};

/**
 * A retried AwaitApproval whose run was decided already gets that decision for its new token. The
 * decision is marked applied first, so the approver's answer to the old token (refused as gone)
 * neither expires it nor tells the approver it was not applied. Returns undefined when the decision
 * was expired before it could be marked (the caller then parks the token).
 */
const answerFromDecision = async (
  input: ApprovalRequest,
  deps: RequestDeps,
): Promise<RequestOutcome | undefined> => {
  const decided = await deps.approvals.get(input.run.runId);
  if (decided?.status === 'EXPIRED' || decided?.status === 'PENDING') return undefined;
  if (!decided?.decidedBy || !decided.decidedAt) {
    throw new Error(
      `approval of run ${input.run.runId} is ${decided?.status ?? 'missing'} without a decision`,
    );
  }
  // Only the execution that asked: a request naming another execution's run is not a retry of it.
  if (decided.executionArn !== input.run.executionArn) {
    throw new Error(`approval of run ${input.run.runId} belongs to another execution`);
  }
  const applied = await deps.approvals.markApplied(
    input.run.runId,
    { status: decided.status, decidedAt: decided.decidedAt },
    deps.now().toISOString(),
  );
  if (!applied) return undefined;
  const decision = {
    principal: decided.decidedBy,
    at: decided.decidedAt,
    ...(decided.reason === undefined ? {} : { reason: decided.reason }),
  };
  if (decided.status === 'APPROVED') {
    await deps.sfn.send(
      new SendTaskSuccessCommand({
        taskToken: input.taskToken,
        output: JSON.stringify(successOutput(decision)),
      }),
    );
  } else {
    await deps.sfn.send(
      new SendTaskFailureCommand({
        taskToken: input.taskToken,
        error: APPROVAL_REJECTED,
        cause: rejectionCause(decision),
      }),
    );
  }
  logger.info('approval already decided; answered the retried request with it', {
    runId: input.run.runId,
    status: decided.status,
  });
  return {
    runId: input.run.runId,
    status: decided.status,
    requestedAt: decided.requestedAt,
    expiresAt: decided.deadline,
    notified: decided.notifiedAt !== undefined,
  };
};

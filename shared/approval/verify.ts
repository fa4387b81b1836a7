import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { auditKeys } from '../audit';
import { ApprovalNotVerifiedError } from '../errors';
import { logger } from '../logger';
import { runRefSchema } from '../run-ref';
import { approverSessionPattern } from './decide';
import { successOutput } from './outcome';
import type { ApprovalStore } from './store';

/** What VerifyApproval and ExpireApproval hand the approval worker (statemachines/ami-pipeline.asl.yml). */
export const approvalCheckSchema = z.object({
  action: z.enum(['verify', 'expire']),
  run: runRefSchema,
});

export type ApprovalCheck = z.infer<typeof approvalCheckSchema>;

export interface VerifyDeps {
  approvals: ApprovalStore;
  /** The audit table, read directly: one strongly consistent GetItem of the decision's event. */
  db: DynamoDBDocumentClient;
  auditTable: string;
  /** The stage's approver role (`ami-pipeline-<stage>-approver`). */
  approverRoleArn: string;
  now: () => Date;
}

/**
 * VerifyApproval: AwaitApproval's token was answered with success, but a task token can be answered
 * by anyone allowed states:SendTaskSuccess on the state machine who has it (the execution history
 * holds it). The run goes on only if its own approval item (`APPROVAL#<runId>`, which only the
 * approval functions may read or write) shows an approval of this execution by a session of the
 * approver role, and the audit table has that decision's APPROVED event. Returns the verified
 * decision, which replaces whatever output the token was answered with.
 */
export const verifyApproval = async (check: ApprovalCheck, deps: VerifyDeps) => {
  const { run } = check;
  const item = await deps.approvals.get(run.runId);
  const refuse = (why: string): never => {
    logger.error('approval not verified', { runId: run.runId, why });
    throw new ApprovalNotVerifiedError(
      `AwaitApproval of run ${run.runId} was answered with success, but ${why}`,
    );
  };
  if (!item) return refuse('the run has no approval item');
  if (item.executionArn !== run.executionArn) return refuse('its approval item is of another execution');
  if (item.status !== 'APPROVED') return refuse(`its approval is ${item.status}, not APPROVED`);
  const { decidedBy, decidedAt } = item;
  if (!decidedBy || !decidedAt) return refuse('its approval names no approver');
  if (!approverSessionPattern(deps.approverRoleArn).test(decidedBy)) {
    return refuse(`${decidedBy} is not a session of ${deps.approverRoleArn}`);
  }
  // The decision path writes APPROVED with id = decidedAt before it answers the token (decide.ts).
  const { Item: event } = await deps.db.send(
    new GetCommand({
      TableName: deps.auditTable,
      Key: { pk: auditKeys.runEvents(run.runId), sk: `EVENT#${decidedAt}#APPROVED#${decidedAt}` },
      ConsistentRead: true,
    }),
  );
  const detail = (event?.detail ?? {}) as Record<string, unknown>;
  if (event?.type !== 'APPROVED' || detail.principal !== decidedBy || detail.decidedAt !== decidedAt) {
    return refuse(`the approval by ${decidedBy} at ${decidedAt} is not in the audit table`);
  }
  logger.info('approval verified', { runId: run.runId, principal: decidedBy });
  return successOutput({
    principal: decidedBy,
    at: decidedAt,
    ...(item.reason === undefined ? {} : { reason: item.reason }),
  });
};

/**
 * ExpireApproval: the run left AwaitApproval without an approval (timed out, rejected, or its
 * success not verified). A still PENDING approval of this execution is marked EXPIRED and its token
 * dropped, so nothing waits on it until the table's TTL; a decided one is left as it is.
 */
export const expireApproval = async (check: ApprovalCheck, deps: VerifyDeps) => {
  const expired = await deps.approvals.expirePending(
    check.run.runId,
    check.run.executionArn,
    deps.now().toISOString(),
  );
  if (expired) logger.info('pending approval expired', { runId: check.run.runId });
  return { runId: check.run.runId, expired };
};

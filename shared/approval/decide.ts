import {
  InvalidToken,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  TaskDoesNotExist,
  TaskTimedOut,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import * as z from 'zod';
import type { AuditRepository } from '../audit';
import {
  ApprovalAlreadyDecidedError,
  ApprovalExpiredError,
  ApprovalNotFoundError,
  ConfigurationError,
  errorMessage,
  errorName,
  InvalidDecisionError,
  NotAnApproverError,
  PipelineError,
} from '../errors';
import { logger } from '../logger';
import { describeIssues } from '../validation';
import { APPROVAL_REJECTED, rejectionCause, successOutput, type Decision } from './outcome';
import type { ApprovalItem, ApprovalStore } from './store';

/**
 * The part of a Lambda Function URL request (payload format 2.0) the decision reads. With
 * `AuthType: AWS_IAM`, Lambda has verified the SigV4 signature and names the caller in
 * `requestContext.authorizer.iam`; a request without it never passed IAM and is refused.
 */
const functionUrlEventSchema = z.looseObject({
  requestContext: z.looseObject({
    http: z.looseObject({ method: z.string() }),
    authorizer: z
      .looseObject({
        iam: z
          .looseObject({
            userArn: z.string().optional(),
            userId: z.string().optional(),
            accountId: z.string().optional(),
          })
          .optional(),
      })
      .optional(),
  }),
  body: z.string().optional(),
  isBase64Encoded: z.boolean().optional(),
});

/** Whether an event came through the Function URL (an approver) rather than from AwaitApproval. */
export const isFunctionUrlEvent = (event: unknown): boolean =>
  typeof event === 'object' && event !== null && 'requestContext' in event;

/** Longest reason accepted (it is stored, published in the failure's cause and shown by the CLI). */
export const MAX_REASON_CHARS = 500;

/** What an approver posts: `{runId, decision, reason}`; a rejection must say why. */
export const decisionBodySchema = z
  .strictObject({
    runId: z.string().regex(/^[a-f0-9]{20}$/, 'must be a run id (20 hex characters)'),
    decision: z.enum(['approve', 'reject']),
    reason: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(MAX_REASON_CHARS, `must be at most ${MAX_REASON_CHARS} characters`)
      // eslint-disable-next-line no-control-regex
      .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'must be one line of text without control characters')
      .optional(),
  })
  .superRefine((body, issue) => {
    if (body.decision === 'reject' && body.reason === undefined) {
      issue.addIssue({ code: 'custom', path: ['reason'], message: 'is required to reject a release' });
    }
  });

export type DecisionBody = z.infer<typeof decisionBodySchema>;

/**
 * Only sessions of exactly the approver role may decide:
 * `arn:<partition>:sts::<account>:assumed-role/<role name>/<session>`. The role's ARN comes from
 * the function's environment; a path in it is not part of the session ARN.
 */
export const approverSessionPattern = (approverRoleArn: string): RegExp => {
  const match = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/(?:[\w+=,.@/-]*\/)?([\w+=,.@-]{1,64})$/.exec(
    approverRoleArn,
  );
  if (!match) throw new ConfigurationError(`APPROVER_ROLE_ARN is not an IAM role ARN: ${approverRoleArn}`);
  const [, partition, account, roleName] = match as unknown as [string, string, string, string];
  const escaped = roleName.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^arn:${partition}:sts::${account}:assumed-role/${escaped}/[\\w+=,.@-]{2,64}$`);
};

export interface DecideDeps {
  approvals: ApprovalStore;
  audit: AuditRepository;
  sfn: SFNClient;
  /** The stage's approver role (`ami-pipeline-<stage>-approver`). */
  approverRoleArn: string;
  now: () => Date;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** HTTP status of each refusal; anything else is a 500 (logged, never detailed to the caller). */
const STATUS_OF: Record<string, number> = {
  InvalidDecisionError: 400,
  NotAnApproverError: 403,
  ApprovalNotFoundError: 404,
  ApprovalAlreadyDecidedError: 409,
  ApprovalExpiredError: 410,
};

const respond = (statusCode: number, body: Record<string, unknown>): HttpResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/** The token no longer answers: the state timed out, failed, or the execution ended. */
const isGone = (err: unknown): boolean =>
  err instanceof TaskTimedOut || err instanceof TaskDoesNotExist || err instanceof InvalidToken;

/**
 * An approver's decision through the Function URL: checks the caller is a session of the approver
 * role, the body, and that the run still waits; records the decision (once), audits it and answers
 * AwaitApproval's token (SendTaskSuccess, or SendTaskFailure with ApprovalRejectedError). Every
 * refusal is an HTTP status with a message naming what is wrong; no answer contains the token.
 */
export const decideApproval = async (event: unknown, deps: DecideDeps): Promise<HttpResponse> => {
  try {
    return respond(200, await decide(event, deps));
  } catch (err) {
    const statusCode = err instanceof PipelineError ? STATUS_OF[err.name] : undefined;
    if (statusCode !== undefined) {
      logger.warn('approval decision refused', {
        statusCode,
        error: errorName(err),
        reason: errorMessage(err),
      });
      return respond(statusCode, { error: errorName(err), message: errorMessage(err) });
    }
    logger.error('approval decision failed', { error: errorName(err), reason: errorMessage(err) });
    return respond(500, {
      error: 'InternalError',
      message: 'the decision could not be completed; nothing was sent to the run, try again',
    });
  }
};

const decide = async (event: unknown, deps: DecideDeps) => {
  // Only a Function URL request: a direct invocation with a task's input is never a decision.
  if (!isFunctionUrlEvent(event)) throw new InvalidDecisionError('not a Function URL request');
  const parsed = functionUrlEventSchema.safeParse(event);
  if (!parsed.success) throw new InvalidDecisionError('not a Function URL request');
  const request = parsed.data;
  if (request.requestContext.http.method !== 'POST') {
    throw new InvalidDecisionError(`use POST, not ${request.requestContext.http.method}`);
  }
  const iam = request.requestContext.authorizer?.iam;
  const caller = iam?.userArn;
  if (!caller || !approverSessionPattern(deps.approverRoleArn).test(caller)) {
    throw new NotAnApproverError(
      `${caller ?? 'an unauthenticated caller'} may not decide approvals: only sessions of ${deps.approverRoleArn} may`,
    );
  }
  const body = parseBody(request.body, request.isBase64Encoded === true);

  const item = await deps.approvals.get(body.runId);
  if (!item) throw new ApprovalNotFoundError(`run ${body.runId} has no approval to decide`);
  const now = deps.now();
  const token = pendingToken(item, now);
  if (token === undefined) {
    if (item.status === 'PENDING' && item.taskToken !== undefined) {
      await deps.approvals.expire(
        body.runId,
        { taskToken: item.taskToken, status: 'PENDING' },
        now.toISOString(),
      );
    }
    throw refusalFor(item, now);
  }

  const decision: Decision = {
    principal: caller,
    at: now.toISOString(),
    ...(body.reason === undefined ? {} : { reason: body.reason }),
  };
  const status = body.decision === 'approve' ? 'APPROVED' : 'REJECTED';
  const claimed = await deps.approvals.decide(body.runId, token, {
    status,
    decidedBy: decision.principal,
    decidedAt: decision.at,
    ...(decision.reason === undefined ? {} : { reason: decision.reason }),
  });
  if (!claimed) {
    const current = await deps.approvals.get(body.runId);
    throw current && current.status !== 'PENDING'
      ? refusalFor(current, now)
      : new ApprovalAlreadyDecidedError(`run ${body.runId}'s approval changed while deciding; try again`);
  }

  // A decision is audited before it reaches the run: none takes effect unrecorded.
  const detail = {
    principal: decision.principal,
    userId: iam?.userId ?? null,
    accountId: iam?.accountId ?? null,
    reason: decision.reason ?? null,
    decidedAt: decision.at,
  };
  try {
    await deps.audit.recordEvent({
      runId: item.runId,
      type: status,
      at: decision.at,
      stage: 'Approval',
      id: decision.at,
      detail,
    });
  } catch (err) {
    await deps.approvals.undoDecision(body.runId, token, decision.at);
    throw err;
  }

  try {
    if (status === 'APPROVED') {
      await deps.sfn.send(
        new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(successOutput(decision)) }),
      );
    } else {
      await deps.sfn.send(
        new SendTaskFailureCommand({
          taskToken: token,
          error: APPROVAL_REJECTED,
          cause: rejectionCause(decision),
        }),
      );
    }
  } catch (err) {
    // Not applied through this token. The decision is withdrawn (EXPIRED when the token is gone,
    // back to PENDING when worth trying again), unless a retried AwaitApproval request applied it
    // to its own new token meanwhile: then the run has it, and the approver is told so.
    const gone = isGone(err);
    const withdrawn = gone
      ? await deps.approvals.expire(body.runId, { taskToken: token, status }, deps.now().toISOString())
      : await deps.approvals.undoDecision(body.runId, token, decision.at);
    if (withdrawn || !(await appliedByRetry(deps.approvals, body.runId, status, decision.at))) {
      await deps.audit.recordEvent({
        runId: item.runId,
        type: 'DECISION_NOT_APPLIED',
        at: deps.now().toISOString(),
        stage: 'Approval',
        id: decision.at,
        detail: { ...detail, decision: status, error: errorName(err) },
      });
      if (gone) {
        throw new ApprovalExpiredError(
          `run ${body.runId} no longer waits for approval (Step Functions: ${errorName(err)}); nothing was applied`,
        );
      }
      throw err;
    }
    logger.info('approval decision applied by the retried AwaitApproval request', {
      runId: item.runId,
      error: errorName(err),
    });
  }
  await deps.approvals.forgetToken(body.runId, deps.now().toISOString());
  logger.info('approval decided', { runId: item.runId, status, principal: decision.principal });
  return {
    runId: item.runId,
    appId: item.appId,
    environment: item.environment,
    status,
    decidedBy: decision.principal,
    decidedAt: decision.at,
    reason: decision.reason ?? null,
  };
};

const parseBody = (raw: string | undefined, base64: boolean): DecisionBody => {
  let json: unknown;
  try {
    json = JSON.parse(base64 ? Buffer.from(raw ?? '', 'base64').toString('utf8') : (raw ?? ''));
  } catch {
    throw new InvalidDecisionError(
      'the body must be JSON: {"runId": "…", "decision": "approve|reject", "reason": "…"}',
    );
  }
  const body = decisionBodySchema.safeParse(json);
  if (!body.success) throw new InvalidDecisionError(describeIssues(body.error).join('; '));
  return body.data;
};

/** Whether a retried AwaitApproval request answered its new token with this very decision. */
const appliedByRetry = async (
  approvals: ApprovalStore,
  runId: string,
  status: 'APPROVED' | 'REJECTED',
  decidedAt: string,
): Promise<boolean> => {
  const current = await approvals.get(runId);
  return current?.status === status && current.decidedAt === decidedAt && current.appliedAt !== undefined;
};

/** The token a decision may answer: only a pending approval's, before its deadline. */
const pendingToken = (item: ApprovalItem, now: Date): string | undefined =>
  item.status === 'PENDING' && item.taskToken !== undefined && now.getTime() <= Date.parse(item.deadline)
    ? item.taskToken
    : undefined;

const refusalFor = (item: ApprovalItem, now: Date): PipelineError => {
  if (item.status === 'APPROVED' || item.status === 'REJECTED') {
    return new ApprovalAlreadyDecidedError(
      `run ${item.runId} was ${item.status.toLowerCase()} by ${item.decidedBy ?? 'unknown'} at ${item.decidedAt ?? 'unknown'}`,
    );
  }
  return new ApprovalExpiredError(
    `run ${item.runId} no longer waits for approval: it expired at ${
      item.status === 'PENDING' || now.getTime() > Date.parse(item.deadline) ? item.deadline : 'its end'
    }`,
  );
};

import type { Context } from 'aws-lambda';
import { decideApproval, isFunctionUrlEvent } from '../../shared/approval/decide';
import { approvalDeps } from '../../shared/approval/deps';
import { approvalRequestSchema, requestApproval } from '../../shared/approval/request';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps = approvalDeps();

/**
 * The approval gate's one function, two callers: AwaitApproval (the task token, `action: request`)
 * and approvers through its Function URL (AWS_IAM; a decision). The token is never logged.
 */
export const run = async (event: unknown, deps = defaultDeps) =>
  isFunctionUrlEvent(event)
    ? decideApproval(event, deps)
    : requestApproval(parseTaskInput(approvalRequestSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  if (isFunctionUrlEvent(event)) return withLogContext(context, {}, () => decideApproval(event, defaultDeps));
  const input = parseTaskInput(approvalRequestSchema, event);
  return withLogContext(context, input.run, () => requestApproval(input, defaultDeps));
};

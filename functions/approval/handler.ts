import type { Context } from 'aws-lambda';
import { isFunctionUrlEvent } from '../../shared/approval/decide';
import { approvalDeps } from '../../shared/approval/deps';
import { approvalRequestSchema, requestApproval, type ApprovalRequest } from '../../shared/approval/request';
import {
  approvalCheckSchema,
  expireApproval,
  verifyApproval,
  type ApprovalCheck,
} from '../../shared/approval/verify';
import { InvalidTaskInputError } from '../../shared/errors';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps = approvalDeps();

/**
 * What the state machine hands the approval worker. An event shaped like a Function URL request is
 * refused: decisions are the approvalDecide function's, which the state machine may not invoke.
 */
const parse = (event: unknown): ApprovalRequest | ApprovalCheck => {
  if (isFunctionUrlEvent(event)) {
    throw new InvalidTaskInputError(
      'the approval worker takes no Function URL requests: decisions go to the approvalDecide function',
    );
  }
  const action = (event as { action?: unknown } | null)?.action;
  return action === 'verify' || action === 'expire'
    ? parseTaskInput(approvalCheckSchema, event)
    : parseTaskInput(approvalRequestSchema, event);
};

const dispatch = (input: ApprovalRequest | ApprovalCheck, deps: typeof defaultDeps): Promise<unknown> => {
  switch (input.action) {
    case 'request':
      return requestApproval(input, deps);
    case 'verify':
      return verifyApproval(input, deps);
    case 'expire':
      return expireApproval(input, deps);
  }
};

/**
 * The approval gate's state-machine side: AwaitApproval parks its task token (`action: request`),
 * VerifyApproval checks that an answered token was an approver's (`verify`), and ExpireApproval
 * closes an approval the run no longer waits for (`expire`). The token is never logged.
 */
export const run = async (event: unknown, deps = defaultDeps) => dispatch(parse(event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parse(event);
  return withLogContext(context, input.run, () => dispatch(input, defaultDeps));
};

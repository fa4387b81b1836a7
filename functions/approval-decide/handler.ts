import type { Context } from 'aws-lambda';
import { decideApproval } from '../../shared/approval/decide';
import { decideDeps } from '../../shared/approval/decide-deps';
import { withLogContext } from '../../shared/logger';

const defaultDeps = decideDeps();

/**
 * Approvers' decisions, through this function's IAM-authenticated Function URL only: no state
 * references it, so the state machine's role may not invoke it. An event that is not a Function
 * URL request is refused (400). The token is never logged.
 */
export const run = async (event: unknown, deps = defaultDeps) => decideApproval(event, deps);

export const handler = async (event: unknown, context: Context) =>
  withLogContext(context, {}, () => decideApproval(event, defaultDeps));

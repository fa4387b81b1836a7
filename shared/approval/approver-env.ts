import { requireEnv } from '../env';
import { approverSessionPattern } from './decide';

/** The stage's approver role from the environment; a malformed ARN fails at cold start, not per call. */
export const approverRoleFromEnv = (): string => {
  const approverRoleArn = requireEnv('APPROVER_ROLE_ARN');
  approverSessionPattern(approverRoleArn);
  return approverRoleArn;
};

import { auditFromEnv } from '../audit-env';
import { dynamodb } from '../clients/dynamodb';
import { sfn } from '../clients/sfn';
import { sns } from '../clients/sns';
import { requireEnv } from '../env';
import { approverSessionPattern, type DecideDeps } from './decide';
import type { RequestDeps } from './request';
import { ApprovalStore } from './store';

/** The approval worker's dependencies, from its environment (functions/approval/function.yml). */
export const approvalDeps = (): RequestDeps & DecideDeps => {
  const approverRoleArn = requireEnv('APPROVER_ROLE_ARN');
  approverSessionPattern(approverRoleArn); // a malformed ARN fails at cold start, not per request
  return {
    approvals: new ApprovalStore(dynamodb, requireEnv('COORDINATION_TABLE')),
    audit: auditFromEnv(),
    sns,
    sfn,
    outcomeTopicArn: requireEnv('OUTCOME_TOPIC_ARN'),
    reportsBucket: requireEnv('REPORTS_BUCKET'),
    stage: requireEnv('STAGE'),
    approverRoleArn,
    now: () => new Date(),
  };
};

import { auditFromEnv } from '../audit-env';
import { dynamodb } from '../clients/dynamodb';
import { sfn } from '../clients/sfn';
import { sns } from '../clients/sns';
import { requireEnv } from '../env';
import { approverRoleFromEnv } from './approver-env';
import type { RequestDeps } from './request';
import { ApprovalStore } from './store';
import type { VerifyDeps } from './verify';

/** The approval worker's dependencies (functions/approval/function.yml): the state machine's caller. */
export const approvalDeps = (): RequestDeps & VerifyDeps => ({
  approvals: new ApprovalStore(dynamodb, requireEnv('COORDINATION_TABLE')),
  audit: auditFromEnv(),
  db: dynamodb,
  auditTable: requireEnv('AUDIT_TABLE'),
  sns,
  sfn,
  outcomeTopicArn: requireEnv('OUTCOME_TOPIC_ARN'),
  reportsBucket: requireEnv('REPORTS_BUCKET'),
  stage: requireEnv('STAGE'),
  approverRoleArn: approverRoleFromEnv(),
  now: () => new Date(),
});

import { auditFromEnv } from '../audit-env';
import { dynamodb } from '../clients/dynamodb';
import { sfn } from '../clients/sfn';
import { requireEnv } from '../env';
import { approverRoleFromEnv } from './approver-env';
import type { DecideDeps } from './decide';
import { ApprovalStore } from './store';

/**
 * The decision function's dependencies (functions/approval-decide/function.yml), apart from the
 * approval worker's (deps.ts) so that its bundle holds no SNS client it never calls.
 */
export const decideDeps = (): DecideDeps => ({
  approvals: new ApprovalStore(dynamodb, requireEnv('COORDINATION_TABLE')),
  audit: auditFromEnv(),
  sfn,
  approverRoleArn: approverRoleFromEnv(),
  now: () => new Date(),
});

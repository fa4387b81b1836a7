import { auditFromEnv } from '../audit-env';
import { dynamodb } from '../clients/dynamodb';
import { s3 } from '../clients/s3';
import { sfn } from '../clients/sfn';
import { ssm } from '../clients/ssm';
import { requireEnv } from '../env';
import type { CompletionDeps } from './complete';
import { TaskStore } from './tasks';

/** Dependencies of command completion (the command-completed worker and the reconciler), from the environment. */
export const completionDeps = (): CompletionDeps => ({
  tasks: new TaskStore(dynamodb, requireEnv('COORDINATION_TABLE')),
  sfn,
  ssm,
  s3,
  audit: auditFromEnv(),
  stage: requireEnv('STAGE'),
  artifactsBucket: requireEnv('ARTIFACTS_BUCKET'),
  reportsBucket: requireEnv('REPORTS_BUCKET'),
  now: () => new Date(),
});

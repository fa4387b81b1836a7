import type { Context } from 'aws-lambda';
import { ec2 } from '../../shared/clients/ec2';
import { kms } from '../../shared/clients/kms';
import { ssm } from '../../shared/clients/ssm';
import { auditFromEnv } from '../../shared/audit-env';
import { distribute, distributeInputSchema, type DistributeDeps } from '../../shared/distribute';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps: DistributeDeps = {
  ec2,
  kms,
  ssm,
  audit: auditFromEnv(),
  kmsKeyArn: requireEnv('KMS_KEY_ARN'),
  copyWaitSeconds: 600,
  now: () => new Date(),
};

export const run = async (event: unknown, deps: DistributeDeps = defaultDeps) =>
  distribute(parseTaskInput(distributeInputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(distributeInputSchema, event);
  return withLogContext(context, input.run, () => distribute(input, defaultDeps));
};

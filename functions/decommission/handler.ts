import type { Context } from 'aws-lambda';
import { auditFromEnv } from '../../shared/audit-env';
import { ec2 } from '../../shared/clients/ec2';
import { kms } from '../../shared/clients/kms';
import { ec2In, kmsIn } from '../../shared/clients/regional';
import { stageConfigFromEnv } from '../../shared/config/stage';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import { distributionPlaces } from '../../shared/compensate';
import { retireInputSchema, retireRelease, type RetireDeps } from '../../shared/release/decommission';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps: RetireDeps = {
  ec2,
  kms,
  audit: auditFromEnv(),
  kmsKeyArn: requireEnv('KMS_KEY_ARN'),
  elsewhere: distributionPlaces(stageConfigFromEnv().distribution.regions, (region) => ({
    ec2: ec2In(region),
    kms: kmsIn(region),
  })),
  now: () => new Date(),
};

export const run = async (event: unknown, deps: RetireDeps = defaultDeps) =>
  retireRelease(parseTaskInput(retireInputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(retireInputSchema, event);
  return withLogContext(context, input.run, () => retireRelease(input, defaultDeps));
};

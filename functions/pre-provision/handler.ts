import type { Context } from 'aws-lambda';
import { AuditRepository } from '../../shared/audit';
import { dynamodb } from '../../shared/clients/dynamodb';
import { s3 } from '../../shared/clients/s3';
import { ssm } from '../../shared/clients/ssm';
import { loadRules } from '../../shared/config/rules';
import { stageConfigFromEnv } from '../../shared/config/stage';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import {
  preProvision,
  preProvisionInputSchema,
  type PreProvisionDeps,
  type PreProvisionOutput,
} from '../../shared/pre-provision';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps: PreProvisionDeps = {
  stage: stageConfigFromEnv(),
  rules: loadRules(),
  platform: {
    kmsKeyArn: requireEnv('KMS_KEY_ARN'),
    artifactsBucket: requireEnv('ARTIFACTS_BUCKET'),
    reportsBucket: requireEnv('REPORTS_BUCKET'),
    logsBucket: requireEnv('LOGS_BUCKET'),
  },
  audit: new AuditRepository(dynamodb, requireEnv('AUDIT_TABLE')),
  s3,
  ssm,
  now: () => new Date(),
};

export const run = async (
  event: unknown,
  deps: PreProvisionDeps = defaultDeps,
): Promise<PreProvisionOutput> => preProvision(parseTaskInput(preProvisionInputSchema, event), deps);

export const handler = async (event: unknown, context: Context): Promise<PreProvisionOutput> => {
  const input = parseTaskInput(preProvisionInputSchema, event);
  return withLogContext(
    context,
    { runId: input.trigger.runId, appId: input.trigger.appId, executionArn: input.run.executionArn },
    () => preProvision(input, defaultDeps),
  );
};

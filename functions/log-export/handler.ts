import type { Context } from 'aws-lambda';
import { auditFromEnv } from '../../shared/audit-env';
import { logs } from '../../shared/clients/logs';
import { ssm } from '../../shared/clients/ssm';
import { stageConfigFromEnv } from '../../shared/config/stage';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import { exportLogs, logExportInputSchema, type LogExportDeps } from '../../shared/release/log-export';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps: LogExportDeps = {
  logs,
  ssm,
  audit: auditFromEnv(),
  kmsKeyArn: requireEnv('KMS_KEY_ARN'),
  deliveryStreamArn: requireEnv('LOG_DELIVERY_STREAM_ARN'),
  subscriptionRoleArn: requireEnv('LOG_SUBSCRIPTION_ROLE_ARN'),
  defaultRetentionDays: stageConfigFromEnv().logRetentionDays,
  now: () => new Date(),
};

export const run = async (event: unknown, deps: LogExportDeps = defaultDeps) =>
  exportLogs(parseTaskInput(logExportInputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(logExportInputSchema, event);
  return withLogContext(context, input.run, () => exportLogs(input, defaultDeps));
};

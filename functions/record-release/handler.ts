import type { Context } from 'aws-lambda';
import { auditFromEnv } from '../../shared/audit-env';
import { dynamodb } from '../../shared/clients/dynamodb';
import { sfn } from '../../shared/clients/sfn';
import { ssm } from '../../shared/clients/ssm';
import { stageConfigFromEnv } from '../../shared/config/stage';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import { recordRelease, recordReleaseInputSchema, type RecordReleaseDeps } from '../../shared/release/live';
import { parseTaskInput } from '../../shared/task-input';

const stage = requireEnv('STAGE');

const defaultDeps: RecordReleaseDeps = {
  db: dynamodb,
  sfn,
  decommissionStateMachineArn: requireEnv('DECOMMISSION_STATE_MACHINE_ARN'),
  stage,
  tableName: requireEnv('AUDIT_TABLE'),
  audit: auditFromEnv(),
  ssm,
  decommissionAfterSeconds: stageConfigFromEnv().release.decommissionAfterSeconds,
  now: () => new Date(),
};

export const run = async (event: unknown, deps: RecordReleaseDeps = defaultDeps) =>
  recordRelease(parseTaskInput(recordReleaseInputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(recordReleaseInputSchema, event);
  return withLogContext(context, input.run, () => recordRelease(input, defaultDeps));
};

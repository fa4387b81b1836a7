import type { Context } from 'aws-lambda';
import { dynamodb } from '../../shared/clients/dynamodb';
import { ec2 } from '../../shared/clients/ec2';
import { elbv2 } from '../../shared/clients/elbv2';
import { kms } from '../../shared/clients/kms';
import { logs } from '../../shared/clients/logs';
import { ssm } from '../../shared/clients/ssm';
import { TaskStore } from '../../shared/commands/tasks';
import { auditFromEnv } from '../../shared/audit-env';
import {
  compensate,
  compensateInputSchema,
  distributionPlaces,
  type CompensateDeps,
} from '../../shared/compensate';
import { clientsIn } from '../../shared/clients/regional';
import { stageConfigFromEnv } from '../../shared/config/stage';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps: CompensateDeps = {
  ec2,
  elbv2,
  kms,
  logs,
  ssm,
  tasks: new TaskStore(dynamodb, requireEnv('COORDINATION_TABLE')),
  audit: auditFromEnv(),
  kmsKeyArn: requireEnv('KMS_KEY_ARN'),
  elsewhere: distributionPlaces(stageConfigFromEnv().distribution.regions, clientsIn),
  now: () => new Date(),
};

export const run = async (event: unknown, deps: CompensateDeps = defaultDeps) =>
  compensate(parseTaskInput(compensateInputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(compensateInputSchema, event);
  return withLogContext(context, input.run, () => compensate(input, defaultDeps));
};

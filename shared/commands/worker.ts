import type { SSMClient } from '@aws-sdk/client-ssm';
import * as z from 'zod';
import { dynamodb } from '../clients/dynamodb';
import { stageConfigFromEnv } from '../config/stage';
import { runRefSchema } from '../run-ref';
import { requireEnv } from '../env';
import type { Context } from 'aws-lambda';
import { withLogContext } from '../logger';
import { parseTaskInput } from '../task-input';
import { launchCommand, type LaunchDeps, type LaunchRequest } from './launch';
import { TaskStore } from './tasks';

/** What every token stage's worker receives from the state machine. */
export const tokenTaskInputSchema = z.object({
  taskToken: z.string().min(1),
  run: runRefSchema,
  runConfigParameter: z.string().startsWith('/ami-pipeline/'),
  timeoutSeconds: z.number().int().positive(),
});

/** How long coordination items are kept after their state's timeout (DynamoDB TTL). */
const RETENTION_SECONDS = 7 * 24 * 3600;

/** The environment every token worker shares (function.yml), read once at cold start. */
export const tokenWorkerEnv = () => ({
  stage: requireEnv('STAGE'),
  region: requireEnv('AWS_REGION'),
  artifactsBucket: requireEnv('ARTIFACTS_BUCKET'),
  kmsKeyArn: requireEnv('KMS_KEY_ARN'),
  assetsPrefix: requireEnv('ASSETS_PREFIX'),
  commandLogGroup: requireEnv('COMMAND_LOG_GROUP'),
  coordinationTable: requireEnv('COORDINATION_TABLE'),
});

export const launchDeps = (env: ReturnType<typeof tokenWorkerEnv>, ssm: SSMClient): LaunchDeps => ({
  ssm,
  tasks: new TaskStore(dynamodb, env.coordinationTable),
  stage: stageConfigFromEnv(),
  artifactsBucket: env.artifactsBucket,
  commandLogGroup: env.commandLogGroup,
  retentionSeconds: RETENTION_SECONDS,
  now: () => new Date(),
});

/**
 * The plumbing every token worker shares: parse the state machine's input, turn it into the
 * stage's launch request, start the command with the run's ids on every log line.
 */
export const tokenWorker = <S extends typeof tokenTaskInputSchema>(
  schema: S,
  toRequest: (input: z.infer<S>, deps: LaunchDeps) => LaunchRequest | Promise<LaunchRequest>,
  defaultDeps: LaunchDeps,
) => ({
  run: async (event: unknown, deps: LaunchDeps = defaultDeps) =>
    launchCommand(await toRequest(parseTaskInput(schema, event), deps), deps),
  handler: async (event: unknown, context: Context) => {
    const input = parseTaskInput(schema, event);
    return withLogContext(context, input.run, async () =>
      launchCommand(await toRequest(input, defaultDeps), defaultDeps),
    );
  },
});

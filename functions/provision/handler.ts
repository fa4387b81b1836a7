import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { ssm } from '../../shared/clients/ssm';
import { launchCommand, type LaunchDeps, type LaunchRequest } from '../../shared/commands/launch';
import { launchDeps, tokenTaskInputSchema, tokenWorkerEnv } from '../../shared/commands/worker';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';

const env = tokenWorkerEnv();
const lockTable = requireEnv('TF_LOCK_TABLE');
const defaultDeps = launchDeps(env, ssm);

const inputSchema = tokenTaskInputSchema.extend({
  mode: z.enum(['apply', 'destroy']),
  amiId: z.string().regex(/^ami-[a-f0-9]{8,17}$/),
});

/**
 * Provision (callback): `terraform apply` of the app and release layers through the provision
 * document; with `mode: destroy` (compensation) it destroys the run's green release stack.
 */
const toRequest = (input: z.infer<typeof inputSchema>): LaunchRequest => ({
  step: 'provision',
  mode: input.mode,
  taskToken: input.taskToken,
  run: input.run,
  stateTimeoutSeconds: input.timeoutSeconds,
  parameters: {
    runConfigParameter: input.runConfigParameter,
    artifactsBucket: env.artifactsBucket,
    assetsPrefix: env.assetsPrefix,
    region: env.region,
    kmsKeyArn: env.kmsKeyArn,
    amiId: input.amiId,
    lockTable,
    mode: input.mode,
  },
});

export const run = async (event: unknown, deps: LaunchDeps = defaultDeps) =>
  launchCommand(toRequest(parseTaskInput(inputSchema, event)), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(inputSchema, event);
  return withLogContext(context, input.run, () => launchCommand(toRequest(input), defaultDeps));
};

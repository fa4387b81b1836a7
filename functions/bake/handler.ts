import type { Context } from 'aws-lambda';
import type { z } from 'zod';
import { ssm } from '../../shared/clients/ssm';
import { launchCommand, type LaunchDeps, type LaunchRequest } from '../../shared/commands/launch';
import { launchDeps, tokenTaskInputSchema, tokenWorkerEnv } from '../../shared/commands/worker';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';

const env = tokenWorkerEnv();
const defaultDeps = launchDeps(env, ssm);

/** Bake (callback): `packer build` on a builder through the bake document; the token waits in DynamoDB. */
const toRequest = (input: z.infer<typeof tokenTaskInputSchema>): LaunchRequest => ({
  step: 'bake',
  mode: 'run',
  taskToken: input.taskToken,
  run: input.run,
  stateTimeoutSeconds: input.timeoutSeconds,
  parameters: {
    runConfigParameter: input.runConfigParameter,
    artifactsBucket: env.artifactsBucket,
    assetsPrefix: env.assetsPrefix,
    region: env.region,
    kmsKeyArn: env.kmsKeyArn,
  },
});

export const run = async (event: unknown, deps: LaunchDeps = defaultDeps) =>
  launchCommand(toRequest(parseTaskInput(tokenTaskInputSchema, event)), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(tokenTaskInputSchema, event);
  return withLogContext(context, input.run, () => launchCommand(toRequest(input), defaultDeps));
};

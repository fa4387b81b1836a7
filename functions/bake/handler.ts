import { ssm } from '../../shared/clients/ssm';
import { launchDeps, tokenTaskInputSchema, tokenWorker, tokenWorkerEnv } from '../../shared/commands/worker';

const env = tokenWorkerEnv();

/** Bake (callback): `packer build` on a builder through the bake document; the token waits in DynamoDB. */
export const { run, handler } = tokenWorker(
  tokenTaskInputSchema,
  (input) => ({
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
  }),
  launchDeps(env, ssm),
);

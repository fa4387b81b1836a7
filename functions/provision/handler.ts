import * as z from 'zod';
import { ssm } from '../../shared/clients/ssm';
import { launchDeps, tokenTaskInputSchema, tokenWorker, tokenWorkerEnv } from '../../shared/commands/worker';
import { requireEnv } from '../../shared/env';

const env = tokenWorkerEnv();
const lockTable = requireEnv('TF_LOCK_TABLE');

/**
 * Provision (callback): `terraform apply` of the app and release layers through the provision
 * document; with `mode: destroy` (compensation) it destroys the run's green release stack.
 */
export const { run, handler } = tokenWorker(
  tokenTaskInputSchema.extend({
    mode: z.enum(['apply', 'destroy']),
    amiId: z.string().regex(/^ami-[a-f0-9]{8,17}$/),
  }),
  (input) => ({
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
  }),
  launchDeps(env, ssm),
);

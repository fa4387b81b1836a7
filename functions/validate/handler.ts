import * as z from 'zod';
import { ssm } from '../../shared/clients/ssm';
import { launchDeps, tokenTaskInputSchema, tokenWorker, tokenWorkerEnv } from '../../shared/commands/worker';
import { requireEnv } from '../../shared/env';
import { loadRunConfig } from '../../shared/run-config';

const env = tokenWorkerEnv();
const reportsBucket = requireEnv('REPORTS_BUCKET');

/** Validate (callback): `inspec exec` against the green instances through the validate document. */
export const { run, handler } = tokenWorker(
  tokenTaskInputSchema.extend({ asgName: z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/) }),
  async (input, deps) => {
    // The app's limit comes from the run config (validated at PreProvision), not the state input.
    const config = await loadRunConfig(deps.ssm, input.runConfigParameter);
    return {
      step: 'validate',
      mode: 'run',
      taskToken: input.taskToken,
      run: input.run,
      stateTimeoutSeconds: input.timeoutSeconds,
      parameters: {
        runConfigParameter: input.runConfigParameter,
        artifactsBucket: env.artifactsBucket,
        reportsBucket,
        assetsPrefix: env.assetsPrefix,
        region: env.region,
        kmsKeyArn: env.kmsKeyArn,
        asgName: input.asgName,
        allowedFailedControls: String(config.app.inspec.allowedFailedControls),
      },
    };
  },
  launchDeps(env, ssm),
);

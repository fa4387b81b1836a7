import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { ssm } from '../../shared/clients/ssm';
import { launchCommand, type LaunchDeps, type LaunchRequest } from '../../shared/commands/launch';
import { launchDeps, tokenTaskInputSchema, tokenWorkerEnv } from '../../shared/commands/worker';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import { loadRunConfig } from '../../shared/run-config';
import { parseTaskInput } from '../../shared/task-input';

const env = tokenWorkerEnv();
const reportsBucket = requireEnv('REPORTS_BUCKET');
const defaultDeps = launchDeps(env, ssm);

const inputSchema = tokenTaskInputSchema.extend({ asgName: z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/) });

/** Validate (callback): `inspec exec` against the green instances through the validate document. */
const toRequest = async (input: z.infer<typeof inputSchema>, deps: LaunchDeps): Promise<LaunchRequest> => {
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
};

export const run = async (event: unknown, deps: LaunchDeps = defaultDeps) =>
  launchCommand(await toRequest(parseTaskInput(inputSchema, event), deps), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(inputSchema, event);
  return withLogContext(context, input.run, async () =>
    launchCommand(await toRequest(input, defaultDeps), defaultDeps),
  );
};
